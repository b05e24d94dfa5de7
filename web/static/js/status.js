// Node statuses from `status/<id>` events, and the initial set from the
// `statuses` command. An empty status clears the node's badge.

import { createEmitter } from './events.js';

export function createStatuses() {
  const emitter = createEmitter();
  const map = new Map();

  const isEmpty = (s) => !s || (!s.fill && !s.shape && !s.text);
  const norm = (s) => ({ fill: s.fill || '', shape: s.shape || 'dot', text: s.text == null ? '' : String(s.text) });

  return {
    on: emitter.on,
    get: (id) => map.get(id),
    set(id, st) {
      if (isEmpty(st)) {
        if (!map.delete(id)) return;
      } else {
        map.set(id, norm(st));
      }
      emitter.emit('change', id);
    },
    replaceAll(obj) {
      map.clear();
      for (const [id, st] of Object.entries(obj || {})) if (!isEmpty(st)) map.set(id, norm(st));
      emitter.emit('change', null);
    },
    clear() {
      map.clear();
      emitter.emit('change', null);
    },
  };
}
