// Editing actions shared by the canvas, the keyboard and the menus: add a
// node, delete, copy and paste, select all, nudge, and inserting a list of
// nodes (paste and import) with fresh ids where needed.

import { clone, canonical } from './dom.js';
import { newId } from './ids.js';
import { getType, isConfigType, defaultsFor, outputCount, refFields, secretFields } from './types.js';
import { geometry } from './nodeview.js';

const TYPE_PLACEHOLDER = 'tab';

export function createActions({ model, view }) {
  let clipboard = null;
  let pastes = 0;

  /** A new node of type at (x, y) on the current tab, selected. */
  function addNode(type, x, y) {
    if (!view.tab) return null;
    const t = getType(type);
    const node = { id: newId(), type, z: view.tab, name: '', ...defaultsFor(type), x, y };
    for (const f of refFields(type)) {
      const candidates = model.configNodes(f.ref);
      if (candidates.length === 1) node[f.name] = candidates[0].id;
    }
    node.wires = Array.from({ length: outputCount(node) }, () => []);
    if (!t) node.wires = [];
    model.update('add', (ops) => ops.put(node));
    view.select([node.id]);
    return node.id;
  }

  function deleteSelection() {
    const ids = view.selectedNodes();
    const wires = view.selectedWires();
    if (!ids.length && !wires.length) return false;
    model.update('delete', (ops) => {
      for (const w of wires) ops.removeWire(w.from, w.port, w.to);
      for (const id of ids) ops.remove(id);
    });
    view.clear();
    return true;
  }

  function selectedNodesForCopy() {
    const ids = new Set(view.selectedNodes());
    return [...ids].map((id) => clone(model.get(id))).filter(Boolean).map((n) => {
      if (Array.isArray(n.wires)) n.wires = n.wires.map((p) => (Array.isArray(p) ? p.filter((t) => ids.has(t)) : []));
      return n;
    });
  }

  function copy() {
    const list = selectedNodesForCopy();
    if (!list.length) return 0;
    clipboard = list;
    pastes = 0;
    navigator.clipboard?.writeText(JSON.stringify(list, null, 2)).catch(() => {});
    return list.length;
  }

  function cut() {
    const n = copy();
    if (n) deleteSelection();
    return n;
  }

  function paste() {
    if (!clipboard || !view.tab) return 0;
    pastes++;
    return insertNodes(clipboard, { fresh: true, offset: { dx: 20 * pastes, dy: 20 * pastes }, label: 'paste' }).ids.length;
  }

  function selectAll() {
    view.select(model.nodesOn(view.tab).map((n) => n.id));
  }

  function nudge(dx, dy) {
    const ids = view.selectedNodes();
    if (!ids.length) return false;
    model.update('move', (ops) => {
      for (const id of ids) {
        const n = model.get(id);
        ops.patch(id, { x: Math.max(0, (Number(n.x) || 0) + dx), y: Math.max(0, (Number(n.y) || 0) + dy) });
      }
    });
    return true;
  }

  /**
   * Inserts nodes: tabs in the list become new tabs, flow nodes of other
   * tabs land on the current one, config nodes are added unless an
   * identical one (secrets aside) exists. Ids that clash (all of them with fresh) are
   * replaced, and wires, config-ref fields and table cells named `node`
   * follow. Wires to nodes outside the list are dropped. Nodes placed on
   * the current tab are moved by offset, or so their top-left corner is at
   * placeAt. Returns the new ids, the tabs made and the unknown types.
   */
  function insertNodes(list, { fresh = false, offset = null, placeAt = null, label = 'import' } = {}) {
    const idMap = new Map();
    const taken = new Set();
    const reuse = new Set();
    const assign = (id) => {
      let nid = typeof id === 'string' && id ? id : '';
      if (!nid || fresh || model.has(nid) || taken.has(nid)) nid = newId();
      taken.add(nid);
      idMap.set(id, nid);
      return nid;
    };
    const tabsIn = list.filter((n) => n.type === TYPE_PLACEHOLDER);
    const isConfig = (n) => n.type !== TYPE_PLACEHOLDER && (isConfigType(n.type) || (!n.z && n.x === undefined && n.wires === undefined && n.type !== 'comment'));
    const configs = list.filter(isConfig);
    const flowNodes = list.filter((n) => n.type !== TYPE_PLACEHOLDER && !isConfig(n));

    // An exported config node comes back without its secrets: it is the
    // same node when everything else matches, and keeps the stored ones.
    const sameConfig = (a, b) => {
      if (a.type !== b.type) return false;
      const strip = (n) => {
        const o = clone(n);
        for (const f of secretFields(n.type)) delete o[f];
        return canonical(o);
      };
      return strip(a) === strip(b);
    };
    for (const c of configs) {
      const existing = model.get(c.id);
      if (!fresh && existing && sameConfig(existing, c)) {
        idMap.set(c.id, c.id);
        reuse.add(c.id);
      } else {
        assign(c.id);
      }
    }
    const newTabs = tabsIn.map((t) => ({ ...clone(t), id: assign(t.id) }));
    const tabIds = new Set(tabsIn.map((t) => t.id));
    for (const n of flowNodes) assign(n.id);

    const here = flowNodes.filter((n) => !tabIds.has(n.z));
    let dx = 0;
    let dy = 0;
    const positioned = here.filter((n) => Number.isFinite(Number(n.x)) && Number.isFinite(Number(n.y)) && n.x !== undefined);
    if (offset) {
      dx = offset.dx;
      dy = offset.dy;
    } else if (placeAt && positioned.length) {
      let minX = Infinity;
      let minY = Infinity;
      for (const n of positioned) {
        const g = geometry(n);
        minX = Math.min(minX, Number(n.x) - g.w / 2);
        minY = Math.min(minY, Number(n.y) - g.h / 2);
      }
      dx = Math.round(placeAt.x - minX);
      dy = Math.round(placeAt.y - minY);
    }

    const remapRefs = (n) => {
      // Node-RED link targets, group members and a node's group follow too.
      if (Array.isArray(n.links)) n.links = n.links.map((id) => idMap.get(id) ?? id);
      if (n.type === 'group' && Array.isArray(n.nodes)) n.nodes = n.nodes.map((id) => idMap.get(id) ?? id);
      if (typeof n.g === 'string' && idMap.has(n.g)) n.g = idMap.get(n.g);
      const t = getType(n.type);
      for (const f of t?.fields || []) {
        if (f.kind === 'config-ref' && typeof n[f.name] === 'string' && idMap.has(n[f.name])) n[f.name] = idMap.get(n[f.name]);
        if (f.kind === 'table' && Array.isArray(n[f.name]) && (f.fields || []).some((c) => c.name === 'node')) {
          for (const row of n[f.name]) if (row && typeof row.node === 'string' && idMap.has(row.node)) row.node = idMap.get(row.node);
        }
      }
    };

    const out = [];
    let auto = 0;
    const base = placeAt || { x: 60, y: 60 };
    for (const c of configs) {
      if (reuse.has(c.id)) continue;
      const n = { ...clone(c), id: idMap.get(c.id) };
      delete n.z;
      remapRefs(n);
      out.push(n);
    }
    for (const src of flowNodes) {
      const n = clone(src);
      n.id = idMap.get(src.id);
      const onNewTab = tabIds.has(src.z);
      n.z = onNewTab ? idMap.get(src.z) : view.tab;
      if (!onNewTab) {
        if (n.x === undefined || n.y === undefined || !Number.isFinite(Number(n.x)) || !Number.isFinite(Number(n.y))) {
          n.x = Math.round(base.x + 80 + (auto % 4) * 180);
          n.y = Math.round(base.y + 20 + Math.floor(auto / 4) * 60);
          auto++;
        } else {
          n.x = Math.max(0, Math.round(Number(n.x) + dx));
          n.y = Math.max(0, Math.round(Number(n.y) + dy));
        }
      }
      if (Array.isArray(n.wires)) {
        n.wires = n.wires.map((p) => (Array.isArray(p) ? p.map((t) => (flowNodes.some((m) => m.id === t) ? idMap.get(t) : null)).filter(Boolean) : []));
      } else {
        n.wires = Array.from({ length: outputCount(n) }, () => []);
      }
      remapRefs(n);
      out.push(n);
    }

    if (!out.length && !newTabs.length) return { ids: [], tabs: [], unknown: [] };
    model.update(label, (ops) => {
      for (const t of newTabs) ops.put(t);
      for (const n of out) ops.put(n);
    });
    const unknown = [...new Set(list.filter((n) => n.type !== TYPE_PLACEHOLDER && n.type !== 'group' && !getType(n.type)).map((n) => n.type))];
    if (newTabs.length && !here.length) {
      view.setTab(newTabs[0].id);
      view.select(out.filter((n) => n.z === newTabs[0].id).map((n) => n.id));
    } else {
      view.select(out.filter((n) => n.z === view.tab).map((n) => n.id));
    }
    return { ids: out.map((n) => n.id), tabs: newTabs.map((t) => t.id), unknown };
  }

  return { addNode, deleteSelection, copy, cut, paste, canPaste: () => !!clipboard, selectAll, nudge, insertNodes };
}
