// The flow being edited: tabs, flow nodes, config nodes and the wires they
// carry (Node-RED's flat format). Every change goes through update(), which
// records the before and after state of each touched node for undo and
// emits "change". Dirty state compares each node with the last deployed
// (or loaded) version, so undoing back to it clears the marker again.
// A debug node switched on or off on the server (no deploy) changes the
// node and its deployed version alike: it is not an edit, is not undone,
// and undo/redo of other changes keep the switched state.

import { clone, canonical } from './dom.js';
import { createEmitter } from './events.js';

export function createModel() {
  const emitter = createEmitter();
  /** @type {Map<string, any>} id → node object (tabs included); read-only for callers */
  const nodes = new Map();
  let tabOrder = [];
  /** id → canonical JSON of the deployed version */
  let deployed = new Map();
  let deployedTabOrder = '';
  let rev = '';
  let tx = null;
  let dirtyCache = null;
  /** id → properties the server switched since the load (e.g. {active}) */
  let switched = new Map();

  function touch(id) {
    if (!tx) throw new Error('model change outside update()');
    if (!tx.before.has(id)) tx.before.set(id, nodes.has(id) ? clone(nodes.get(id)) : null);
  }

  const ops = {
    get: (id) => nodes.get(id),
    /** Adds or replaces a node (a copy of it is stored). */
    put(node) {
      touch(node.id);
      nodes.set(node.id, clone(node));
      if (node.type === 'tab' && !tabOrder.includes(node.id)) tabOrder.push(node.id);
    },
    /** Sets (or with undefined deletes) properties of a node. */
    patch(id, props) {
      const n = nodes.get(id);
      if (!n) return;
      touch(id);
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined) delete n[k];
        else n[k] = clone(v);
      }
    },
    /** Removes a node, the wires to it, and for a tab every node on it. */
    remove(id) {
      const n = nodes.get(id);
      if (!n) return;
      if (n.type === 'tab') {
        for (const m of [...nodes.values()]) if (m.z === id) ops.remove(m.id);
        tabOrder = tabOrder.filter((t) => t !== id);
      }
      touch(id);
      nodes.delete(id);
      for (const m of nodes.values()) {
        if (!Array.isArray(m.wires) || !m.wires.some((p) => Array.isArray(p) && p.includes(id))) continue;
        touch(m.id);
        m.wires = m.wires.map((p) => (Array.isArray(p) ? p.filter((t) => t !== id) : []));
      }
    },
    addWire(from, port, to) {
      const n = nodes.get(from);
      if (!n || from === to) return false;
      const wires = Array.isArray(n.wires) ? n.wires.map((p) => (Array.isArray(p) ? [...p] : [])) : [];
      while (wires.length <= port) wires.push([]);
      if (wires[port].includes(to)) return false;
      touch(from);
      wires[port].push(to);
      n.wires = wires;
      return true;
    },
    removeWire(from, port, to) {
      const n = nodes.get(from);
      if (!n || !Array.isArray(n.wires?.[port])) return;
      touch(from);
      n.wires = n.wires.map((p, i) => (i === port ? p.filter((t) => t !== to) : p));
    },
    moveTab(id, index) {
      const rest = tabOrder.filter((t) => t !== id);
      rest.splice(Math.max(0, Math.min(index, rest.length)), 0, id);
      tabOrder = rest;
    },
  };

  function finish(t) {
    const after = new Map();
    let changed = t.tabsBefore.join('\n') !== tabOrder.join('\n');
    for (const [id, before] of t.before) {
      const now = nodes.has(id) ? clone(nodes.get(id)) : null;
      after.set(id, now);
      if (canonical(before) !== canonical(now)) changed = true;
    }
    if (!changed) return;
    // An edit that sets a switched property itself takes it over.
    for (const id of t.before.keys()) {
      const sw = switched.get(id);
      const n = nodes.get(id);
      if (sw && (!n || Object.entries(sw).some(([k, v]) => canonical(n[k]) !== canonical(v)))) switched.delete(id);
    }
    dirtyCache = null;
    const entry = { label: t.label, before: t.before, after, tabsBefore: t.tabsBefore, tabsAfter: tabOrder.slice(), meta: t.meta };
    emitter.emit('commit', entry);
    emitter.emit('change', { label: t.label, ids: [...t.before.keys()] });
  }

  /** Restores a recorded state (undo/redo): states maps id → node or null. */
  function restore(states, tabs) {
    for (const [id, n] of states) {
      if (n === null) nodes.delete(id);
      else nodes.set(id, { ...clone(n), ...clone(switched.get(id) || {}) });
    }
    tabOrder = tabs.filter((id) => nodes.has(id));
    for (const n of nodes.values()) if (n.type === 'tab' && !tabOrder.includes(n.id)) tabOrder.push(n.id);
    dirtyCache = null;
    emitter.emit('change', { label: 'restore', ids: [...states.keys()] });
  }

  function computeDirty() {
    if (dirtyCache) return dirtyCache;
    const changed = new Set();
    for (const [id, n] of nodes) if (deployed.get(id) !== canonical(n)) changed.add(id);
    let deleted = 0;
    for (const id of deployed.keys()) if (!nodes.has(id)) deleted++;
    const dirty = changed.size > 0 || deleted > 0 || deployedTabOrder !== tabOrder.join('\n');
    dirtyCache = { changed, deleted, dirty };
    return dirtyCache;
  }

  function snapshotDeployed() {
    deployed = new Map([...nodes].map(([id, n]) => [id, canonical(n)]));
    deployedTabOrder = tabOrder.join('\n');
    dirtyCache = null;
  }

  return {
    on: emitter.on,
    /**
     * Applies a change: fn gets the change operations. Nested calls join
     * the outer change. meta is kept with the undo entry.
     */
    update(label, fn, meta) {
      if (tx) return fn(ops);
      tx = { label, before: new Map(), tabsBefore: tabOrder.slice(), meta };
      let result;
      try {
        result = fn(ops);
      } finally {
        const t = tx;
        tx = null;
        finish(t);
      }
      return result;
    },
    restore,
    /** Replaces everything with a flow from the server. */
    load(flows, revision, { extraTabs = [] } = {}) {
      nodes.clear();
      tabOrder = [];
      for (const n of flows || []) {
        if (!n || typeof n !== 'object' || typeof n.id !== 'string') continue;
        nodes.set(n.id, clone(n));
        if (n.type === 'tab') tabOrder.push(n.id);
      }
      for (const t of extraTabs) {
        nodes.set(t.id, clone(t));
        tabOrder.push(t.id);
      }
      rev = revision || '';
      switched = new Map();
      snapshotDeployed();
      emitter.emit('load');
      emitter.emit('change', { label: 'load', ids: [...nodes.keys()] });
    },
    /**
     * Records a deploy: sent is the flow that was deployed, stored the
     * flow as the server now holds it (secrets as placeholders). Nodes not
     * edited since are replaced by their stored form; nodes edited while
     * the deploy was under way stay changed.
     */
    markDeployed(revision, sent, stored) {
      rev = revision || '';
      const sentById = new Map(sent.map((n) => [n.id, canonical(n)]));
      for (const n of stored) {
        if (nodes.has(n.id) && canonical(nodes.get(n.id)) === sentById.get(n.id)) nodes.set(n.id, clone(n));
      }
      deployed = new Map(stored.map((n) => [n.id, canonical(n)]));
      deployedTabOrder = stored.filter((n) => n.type === 'tab').map((n) => n.id).join('\n');
      dirtyCache = null;
      emitter.emit('change', { label: 'deployed', ids: [] });
    },
    /**
     * Records a change the server made to a deployed node without a deploy
     * (a debug node switched on or off): the node and its deployed version
     * both take props, so nothing is marked changed and nothing goes into
     * undo. The revision becomes `revision` when the editor held `prev`
     * (the flow it holds is then the deployed one again).
     */
    switchDeployed(id, props, revision, prev) {
      const n = nodes.get(id);
      if (!n) return;
      for (const [k, v] of Object.entries(props)) n[k] = clone(v);
      const d = deployed.get(id);
      if (d !== undefined) deployed.set(id, canonical({ ...JSON.parse(d), ...props }));
      switched.set(id, { ...(switched.get(id) || {}), ...clone(props) });
      if (revision && prev && rev === prev) rev = revision;
      dirtyCache = null;
      emitter.emit('change', { label: 'switched', ids: [id] });
    },
    get rev() {
      return rev;
    },
    get: (id) => nodes.get(id),
    has: (id) => nodes.has(id),
    tabs: () => tabOrder.map((id) => nodes.get(id)).filter(Boolean),
    /** Flow nodes on a tab. */
    nodesOn: (tab) => [...nodes.values()].filter((n) => n.z === tab && n.type !== 'tab'),
    /** Config nodes (no tab), optionally of one type. */
    configNodes: (type) => [...nodes.values()].filter((n) => n.type !== 'tab' && !n.z && (!type || n.type === type)),
    all: () => [...nodes.values()],
    /** The flow in Node-RED's format: tabs first, then the rest in order. */
    toFlows() {
      const tabs = tabOrder.map((id) => nodes.get(id)).filter(Boolean);
      const rest = [...nodes.values()].filter((n) => n.type !== 'tab');
      return clone([...tabs, ...rest]);
    },
    /** Nodes whose outputs are wired to id. */
    sourcesOf(id) {
      const out = [];
      for (const n of nodes.values()) {
        (n.wires || []).forEach((p, port) => {
          if (Array.isArray(p) && p.includes(id)) out.push({ from: n.id, port });
        });
      }
      return out;
    },
    isChanged: (id) => computeDirty().changed.has(id),
    isDeployed: (id) => deployed.has(id),
    isDirty: () => computeDirty().dirty,
    dirtySummary: () => computeDirty(),
  };
}
