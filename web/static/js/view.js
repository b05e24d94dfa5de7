// What the user is looking at: the active tab and the selection (nodes and
// wires on that tab). Emits "tab" and "selection".

import { createEmitter } from './events.js';

export const wireKey = (from, port, to) => `${from}:${port}:${to}`;

export function parseWireKey(key) {
  const [from, port, to] = key.split(':');
  return { from, port: Number(port), to };
}

export function createView(model) {
  const emitter = createEmitter();
  let activeTab = '';
  const nodes = new Set();
  const wires = new Set();

  function changed() {
    emitter.emit('selection');
  }

  function prune() {
    let dirty = false;
    for (const id of [...nodes]) {
      const n = model.get(id);
      if (!n || n.z !== activeTab) {
        nodes.delete(id);
        dirty = true;
      }
    }
    for (const k of [...wires]) {
      const w = parseWireKey(k);
      const n = model.get(w.from);
      if (!n || n.z !== activeTab || !n.wires?.[w.port]?.includes(w.to)) {
        wires.delete(k);
        dirty = true;
      }
    }
    if (dirty) changed();
  }

  model.on('change', () => {
    if (activeTab && !model.has(activeTab)) {
      const first = model.tabs()[0];
      view.setTab(first ? first.id : '');
    }
    prune();
  });

  const view = {
    on: emitter.on,
    get tab() {
      return activeTab;
    },
    setTab(id) {
      if (id === activeTab) return;
      activeTab = id;
      nodes.clear();
      wires.clear();
      emitter.emit('tab', id);
      changed();
    },
    selectedNodes: () => [...nodes],
    selectedWires: () => [...wires].map(parseWireKey),
    isSelected: (id) => nodes.has(id),
    isWireSelected: (key) => wires.has(key),
    hasSelection: () => nodes.size > 0 || wires.size > 0,
    /** Selects exactly these nodes (or adds them with add). */
    select(ids, { add = false } = {}) {
      if (!add) {
        nodes.clear();
        wires.clear();
      }
      for (const id of ids) nodes.add(id);
      changed();
    },
    toggle(id) {
      if (nodes.has(id)) nodes.delete(id);
      else nodes.add(id);
      changed();
    },
    selectWire(key, { add = false } = {}) {
      if (!add) {
        nodes.clear();
        wires.clear();
      }
      if (add && wires.has(key)) wires.delete(key);
      else wires.add(key);
      changed();
    },
    clear() {
      if (!nodes.size && !wires.size) return;
      nodes.clear();
      wires.clear();
      changed();
    },
  };
  return view;
}
