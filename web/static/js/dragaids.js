// What a drag on the canvas needs besides moving things: scrolling the
// view while the pointer is near its edge, finding the wire under a point
// (for splicing a dragged node into it) and highlighting it, the splice
// itself, and scrolling dropped nodes into view.

import { parseWireKey } from './view.js';
import { getType, outputCount, inputCount, defaultsFor } from './types.js';

const EDGE = 36;

/** els maps node ids to their drawn { el }. */
export function createDragAids({ model, wrap, wiresLayer, els }) {
  let spliceKey = null;
  let auto = null;
  let autoTimer = 0;

  /** Scrolls the view while the pointer is near (or past the right or bottom) edge during a drag; onStep re-runs the drag's move. */
  function autoScroll(clientX, clientY, onStep) {
    const r = wrap.getBoundingClientRect();
    let vx = 0;
    let vy = 0;
    const inX = clientX >= r.left && clientX <= r.right + 240;
    const inY = clientY >= r.top - 10 && clientY <= r.bottom + 60;
    if (inX && inY) {
      if (clientX < r.left + EDGE) vx = -1;
      else if (clientX > r.right - EDGE - 14) vx = 1;
      if (clientY < r.top + EDGE) vy = -1;
      else if (clientY > r.bottom - EDGE - 14) vy = 1;
    }
    if (!vx && !vy) {
      stopAuto();
      return;
    }
    auto = { vx, vy, clientX, clientY, onStep };
    if (!autoTimer) autoTimer = setInterval(stepAuto, 30);
  }

  function stepAuto() {
    if (!auto) return stopAuto();
    const l = wrap.scrollLeft;
    const t = wrap.scrollTop;
    wrap.scrollLeft += auto.vx * 16;
    wrap.scrollTop += auto.vy * 16;
    if (wrap.scrollLeft !== l || wrap.scrollTop !== t) auto.onStep(auto.clientX, auto.clientY);
  }

  function stopAuto() {
    clearInterval(autoTimer);
    autoTimer = 0;
    auto = null;
  }

  /** The wire (key) under a canvas point, leaving out wires of the node ignore. */
  function wireAt(p, ignore) {
    const pt = new DOMPoint(p.x, p.y);
    for (const g of wiresLayer.children) {
      const w = parseWireKey(g.dataset.key || '');
      if (w.from === ignore || w.to === ignore) continue;
      const hit = g.querySelector('.wire-hit');
      if (hit && hit.isPointInStroke(pt)) return g.dataset.key;
    }
    return null;
  }

  function markSplice(key) {
    if (key === spliceKey) return;
    wiresLayer.querySelector('.wire-group.splice')?.classList.remove('splice');
    spliceKey = key;
    if (key) wiresLayer.querySelector(`.wire-group[data-key="${CSS.escape(key)}"]`)?.classList.add('splice');
  }

  // A new node of the type has an input and at least one output.
  const spliceable = (type) => {
    const t = getType(type);
    if (!t || t.configNode || !(t.inputs > 0)) return false;
    if (!t.outputsField) return t.outputs > 0;
    const outs = defaultsFor(type)[t.outputsField];
    return typeof outs === 'number' ? outs > 0 : (outs || []).length > 0;
  };

  /** Whether a node is unwired (and so may be spliced by dragging it onto a wire). */
  function loose(id) {
    const n = model.get(id);
    if (!n || inputCount(n) === 0 || outputCount(n) === 0) return false;
    if ((n.wires || []).some((p) => Array.isArray(p) && p.length)) return false;
    return model.sourcesOf(id).length === 0;
  }

  /** Inserts node id into the wire key: from → id → to (inside the caller's change). */
  function splice(ops, id, key) {
    const w = parseWireKey(key);
    ops.removeWire(w.from, w.port, w.to);
    ops.addWire(w.from, w.port, id);
    ops.addWire(id, 0, w.to);
  }

  /** Scrolls so that the nodes' boxes are inside the visible canvas. */
  function ensureVisible(ids) {
    const r = wrap.getBoundingClientRect();
    let dx = 0;
    let dy = 0;
    for (const id of ids) {
      const b = els.get(id)?.el.querySelector('.node-body')?.getBoundingClientRect();
      if (!b) continue;
      if (b.right > r.right - 24) dx = Math.max(dx, b.right - r.right + 40);
      if (b.left < r.left + 4) dx = Math.min(dx, b.left - r.left - 20);
      if (b.bottom > r.bottom - 24) dy = Math.max(dy, b.bottom - r.bottom + 40);
      if (b.top < r.top + 4) dy = Math.min(dy, b.top - r.top - 20);
    }
    if (dx) wrap.scrollLeft += dx;
    if (dy) wrap.scrollTop += dy;
  }

  return {
    autoScroll,
    stopAuto,
    wireAt,
    markSplice,
    spliceable,
    loose,
    splice,
    ensureVisible,
    /** The wire a drop would splice into, if any. */
    get spliceKey() {
      return spliceKey;
    },
  };
}
