// Wires: bezier paths from an output port to an input port, their keyed
// rendering, and drawing a new wire by dragging from a port.

import { s } from './dom.js';
import { geometry, origin, portY, PORT } from './nodeview.js';
import { wireKey } from './view.js';

/** A bezier from (x1, y1) to (x2, y2), symmetric about its midpoint. */
export function wirePath(x1, y1, x2, y2) {
  const dx = x2 - x1;
  let c;
  if (dx >= 0) c = Math.max(dx * 0.5, 25);
  else c = Math.min(Math.max(60, -dx * 0.5 + 40), 160);
  if (dx < 0 && Math.abs(y2 - y1) < 20) c = Math.max(c, 60);
  // A level wire bends by a fraction of a pixel (still through its
  // midpoint), so its box is never flat and it can be pointed at.
  const k = Math.abs(y2 - y1) < 1 ? 1.5 : 0;
  return `M${x1} ${y1}C${x1 + c} ${y1 - k} ${x2 - c} ${y2 + k} ${x2} ${y2}`;
}

/** Where a node's output port and input port are, in canvas coordinates. */
export function outPoint(node, port, offset) {
  const g = geometry(node);
  const o = origin(node, g, offset?.dx, offset?.dy);
  return { x: o.x + g.w + PORT / 2, y: o.y + portY(g, port) };
}

export function inPoint(node, offset) {
  const g = geometry(node);
  const o = origin(node, g, offset?.dx, offset?.dy);
  return { x: o.x - PORT / 2, y: o.y + g.h / 2 };
}

/**
 * Draws the wires between nodes on a tab into layer, reusing the elements
 * of wires that still exist. offsetOf(id) gives the live drag offset.
 */
export function renderWires(layer, model, view, tab, offsetOf) {
  const existing = new Map();
  for (const el of layer.children) existing.set(el.dataset.key, el);
  const seen = new Set();
  for (const n of model.nodesOn(tab)) {
    if (!Array.isArray(n.wires)) continue;
    n.wires.forEach((targets, port) => {
      if (!Array.isArray(targets)) return;
      for (const to of targets) {
        const t = model.get(to);
        if (!t || t.z !== tab) continue;
        const key = wireKey(n.id, port, to);
        seen.add(key);
        const a = outPoint(n, port, offsetOf(n.id));
        const b = inPoint(t, offsetOf(to));
        const d = wirePath(a.x, a.y, b.x, b.y);
        let el = existing.get(key);
        if (!el) {
          el = s(
            'g',
            { class: 'wire-group', 'data-key': key },
            s('path', { class: 'wire-hit', d }),
            s('path', { class: 'wire', d, 'data-from': n.id, 'data-port': port, 'data-to': to }),
          );
          layer.append(el);
        } else if (el.lastChild.getAttribute('d') !== d) {
          el.firstChild.setAttribute('d', d);
          el.lastChild.setAttribute('d', d);
        }
        const sel = view.isWireSelected(key);
        el.classList.toggle('selected', sel);
        el.lastChild.classList.toggle('selected', sel);
        const disabled = n.d === true || t.d === true;
        el.classList.toggle('disabled', disabled);
      }
    });
  }
  for (const [key, el] of existing) if (!seen.has(key)) el.remove();
}

/**
 * Lets the user draw a wire from a port: a dashed line follows the pointer;
 * releasing over a node's opposite port (or its body) connects them.
 * reverse is true when the drag started on an input port.
 */
export function startWireDrag(ctx, event, nodeId, port, reverse) {
  const { model, overlay, toCanvas, svg, autoScroll = () => {}, stopAuto = () => {} } = ctx;
  const node = model.get(nodeId);
  if (!node) return;
  const start = reverse ? inPoint(node) : outPoint(node, port);
  const line = s('path', { class: 'drag-wire', d: wirePath(start.x, start.y, start.x, start.y) });
  overlay.append(line);
  svg.classList.add('wiring');

  const draw = (clientX, clientY) => {
    const p = toCanvas(clientX, clientY);
    line.setAttribute('d', reverse ? wirePath(p.x, p.y, start.x, start.y) : wirePath(start.x, start.y, p.x, p.y));
  };
  const move = (e) => {
    draw(e.clientX, e.clientY);
    autoScroll(e.clientX, e.clientY, draw);
  };
  const finish = (e) => {
    stopAuto();
    window.removeEventListener('pointermove', move);
    window.removeEventListener('pointerup', finish);
    window.removeEventListener('pointercancel', finish);
    line.remove();
    svg.classList.remove('wiring');
    if (e.type !== 'pointerup') return;
    const hit = document.elementFromPoint(e.clientX, e.clientY);
    const g = hit?.closest?.('svg#canvas g.node');
    if (!g) return;
    const other = model.get(g.dataset.id);
    if (!other || other.id === nodeId || other.z !== node.z) return;
    if (reverse) {
      const outPort = hit.closest('.port.out');
      const p = outPort ? Number(outPort.dataset.port) : 0;
      if (!g.querySelector('.port.out')) return;
      model.update('wire', (ops) => ops.addWire(other.id, p, nodeId));
    } else {
      if (!g.querySelector('.port.in')) return;
      model.update('wire', (ops) => ops.addWire(nodeId, port, other.id));
    }
  };
  window.addEventListener('pointermove', move);
  window.addEventListener('pointerup', finish);
  window.addEventListener('pointercancel', finish);
  draw(event.clientX, event.clientY);
}
