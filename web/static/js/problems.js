// Validation problems of the flow being edited, per node. The flow is sent
// to the server's `validate` command shortly after every change, so node
// markers stay current while editing; deploy and the form ask directly.

import { createEmitter } from './events.js';

const DELAY = 300;

export function createProblems(model, comms) {
  const emitter = createEmitter();
  let byNode = new Map();
  let general = [];
  let timer = null;
  let seq = 0;

  function set(list) {
    byNode = new Map();
    general = [];
    for (const p of list || []) {
      if (p.id) {
        if (!byNode.has(p.id)) byNode.set(p.id, []);
        byNode.get(p.id).push(p);
      } else {
        general.push(p);
      }
    }
    emitter.emit('change');
  }

  /** Validates flows (the current flow by default); resolves with the problems. */
  async function validate(flows = model.toFlows()) {
    const res = await comms.request('validate', { flows }, 10000);
    return res.problems || [];
  }

  async function refresh() {
    timer = null;
    const mine = ++seq;
    try {
      const list = await validate();
      if (mine === seq) set(list);
    } catch {
      // Offline or the server is busy: the next change or reconnect retries.
    }
  }

  return {
    on: emitter.on,
    set,
    validate,
    /** Revalidates the current flow soon (debounced). */
    schedule(delay = DELAY) {
      clearTimeout(timer);
      timer = setTimeout(refresh, delay);
    },
    forNode: (id) => byNode.get(id) || [],
    errorsFor: (id) => (byNode.get(id) || []).filter((p) => p.severity !== 'warning'),
    general: () => general,
  };
}

/** Whether a list of problems has an error (warnings do not stop a deploy). */
export const hasErrors = (list) => list.some((p) => p.severity !== 'warning');
