// Node statuses from `status/<id>` events; the server follows every
// `status/#` subscription (made again on each connect) with the current
// status of each node. An empty status clears the node's badge.

import { createEmitter } from './events.js';

export function createStatuses() {
  const emitter = createEmitter();
  const map = new Map();

  const isEmpty = (s) => !s || (!s.fill && !s.shape && !s.text);

  return {
    on: emitter.on,
    get: (id) => map.get(id),
    set(id, st) {
      if (isEmpty(st)) {
        if (!map.delete(id)) return;
      } else {
        map.set(id, { fill: st.fill || '', shape: st.shape || 'dot', text: st.text == null ? '' : String(st.text) });
      }
      emitter.emit('change', id);
    },
    clear() {
      map.clear();
      emitter.emit('change', null);
    },
  };
}
