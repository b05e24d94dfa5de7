// The flow canvas: an SVG view of the active tab. Nodes are drawn (keyed
// by id, redrawn only when what they show changes), selected by click,
// shift/ctrl-click and rubber band, moved by dragging, wired by dragging
// from a port; the view pans (scroll, middle button or space + drag) and
// zooms. Dragging near an edge scrolls the view; positions snap to the
// grid while grid snap is on; a node dragged over a wire (from the palette,
// or an unwired node on the canvas) highlights it and, dropped, is spliced
// into it. Right-click opens the context menu, Ctrl+click on empty canvas
// the quick-add search.

import { $, s, h } from './dom.js';
import { describe, draw, geometry, origin } from './nodeview.js';
import { renderWires, startWireDrag } from './wires.js';
import { createDragAids } from './dragaids.js';
import { drawGroup } from './nodered.js';
import { bus } from './events.js';

const WIDTH = 6000;
const HEIGHT = 4000;
const DRAG_THRESHOLD = 3;
const ZOOMS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 1.75, 2];
export const GRID = 20;
const GRID_KEY = 'tbflow.gridSnap';

export function createCanvas({ model, view, statuses, problems, onEdit, onInject, onDrop, onMenu = () => {}, onQuickAdd = () => {} }) {
  const svg = $('#canvas');
  const viewport = $('#viewport');
  const nodesLayer = $('#nodes-layer');
  const wiresLayer = $('#wires-layer');
  const overlay = $('#overlay-layer');
  const wrap = $('#canvas-wrap');
  const emptyHint = $('#canvas-empty');
  const els = new Map();
  const scrolls = new Map();
  let zoom = 1;
  let drag = null;
  let spaceHeld = false;
  let frame = 0;
  let snap = false;
  try {
    snap = localStorage.getItem(GRID_KEY) === '1';
  } catch {
    /* storage blocked: off */
  }
  const tip = h('div', { id: 'port-tip', class: 'port-tip', hidden: true });
  document.body.append(tip);

  const snapV = (v) => (snap ? Math.round(v / GRID) * GRID : Math.round(v));

  const aids = createDragAids({ model, wrap, wiresLayer, els });
  const { autoScroll, stopAuto, wireAt, markSplice, spliceable, loose, splice, ensureVisible } = aids;

  function toCanvas(clientX, clientY) {
    const m = viewport.getScreenCTM();
    if (!m) return { x: 0, y: 0 };
    const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  const offsetOf = (id) => (drag && drag.ids.has(id) ? drag : null);

  function render() {
    cancelAnimationFrame(frame);
    frame = 0;
    const tab = view.tab;
    const seen = new Set();
    for (const n of model.nodesOn(tab)) {
      seen.add(n.id);
      let rec = els.get(n.id);
      if (!rec) {
        rec = { el: s('g', { class: 'node', 'data-id': n.id, 'data-type': n.type }), sig: '' };
        els.set(n.id, rec);
        nodesLayer.append(rec.el);
      }
      if (n.type === 'group') {
        drawGroup(rec, n, view.isSelected(n.id)); // a Node-RED group's frame
        continue;
      }
      const d = describe(n, { status: statuses.get(n.id), changed: model.isChanged(n.id), problems: problems.forNode(n.id) });
      const sig = JSON.stringify(d) + n.id;
      if (sig !== rec.sig) {
        draw(rec.el, n, d);
        rec.sig = sig;
        if (rec.el.getAttribute('data-type') !== n.type) rec.el.setAttribute('data-type', n.type);
        rec.el.classList.toggle('invalid', d.error);
        rec.el.classList.toggle('warning', !d.error && d.problems.length > 0);
        rec.el.classList.toggle('disabled', d.disabled);
        rec.el.classList.toggle('changed', d.changed);
        rec.el.classList.toggle('unknown', !d.known);
        rec.el.classList.toggle('comment', n.type === 'comment');
      }
      rec.g = d.g;
      const o = origin(n, d.g, offsetOf(n.id)?.dx, offsetOf(n.id)?.dy);
      rec.el.setAttribute('transform', `translate(${o.x} ${o.y})`);
      rec.el.classList.toggle('selected', view.isSelected(n.id));
    }
    for (const [id, rec] of els) {
      if (!seen.has(id)) {
        rec.el.remove();
        els.delete(id);
      }
    }
    renderWires(wiresLayer, model, view, tab, offsetOf);
    emptyHint.hidden = seen.size > 0 || !tab;
  }

  function renderSoon() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  // ---------------------------------------------------------- pointer

  svg.addEventListener('pointerdown', (e) => {
    svg.focus({ preventScroll: true });
    if (e.button === 1 || (e.button === 0 && spaceHeld)) {
      e.preventDefault();
      pan(e);
      return;
    }
    if (e.button !== 0) return;
    const t = e.target;
    const g = t.closest('g.node');
    if (t.closest('.inject-button, .debug-button')) return;
    const port = t.closest('.port');
    if (port && g) {
      e.preventDefault();
      const reverse = port.classList.contains('in');
      startWireDrag({ model, overlay, toCanvas, svg, autoScroll, stopAuto }, e, g.dataset.id, Number(port.dataset.port || 0), reverse);
      return;
    }
    if (g) {
      nodeDown(e, g.dataset.id);
      return;
    }
    const wire = t.closest('.wire-group');
    if (wire) {
      view.selectWire(wire.dataset.key, { add: e.shiftKey || e.ctrlKey || e.metaKey });
      return;
    }
    lasso(e);
  });

  svg.addEventListener('click', (e) => {
    const btn = e.target.closest('.inject-button');
    if (btn) {
      const g = btn.closest('g.node');
      if (g) onInject(g.dataset.id);
    }
    const dbg = e.target.closest('.debug-button');
    if (dbg) {
      const id = dbg.closest('g.node')?.dataset.id;
      if (id) bus.emit('debug-switch', id);
    }
  });

  svg.addEventListener('contextmenu', (e) => {
    e.preventDefault();
    const g = e.target.closest('g.node');
    const wire = e.target.closest('.wire-group');
    if (g && !view.isSelected(g.dataset.id)) view.select([g.dataset.id]);
    if (!g && wire) view.selectWire(wire.dataset.key);
    const p = toCanvas(e.clientX, e.clientY);
    onMenu({ clientX: e.clientX, clientY: e.clientY, x: snapV(p.x), y: snapV(p.y), node: g?.dataset.id || null, wire: !g && wire ? wire.dataset.key : null });
  });

  // Output port labels, as Node-RED shows them, on hover.
  svg.addEventListener('pointerover', (e) => {
    const port = e.target.closest?.('.port.out[data-label]');
    if (!port) return;
    const b = port.getBoundingClientRect();
    tip.textContent = port.getAttribute('data-label');
    tip.hidden = false;
    tip.style.left = `${b.right + 6}px`;
    tip.style.top = `${b.top + b.height / 2}px`;
  });
  svg.addEventListener('pointerout', (e) => {
    if (e.target.closest?.('.port.out')) tip.hidden = true;
  });

  svg.addEventListener('dblclick', (e) => {
    if (e.target.closest('.inject-button, .port')) return;
    const g = e.target.closest('g.node');
    if (g) onEdit(g.dataset.id);
  });

  function track(onMove, onUp) {
    const move = (e) => onMove(e);
    const up = (e) => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      window.removeEventListener('pointercancel', up);
      onUp(e);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    window.addEventListener('pointercancel', up);
  }

  function nodeDown(e, id) {
    const add = e.shiftKey || e.ctrlKey || e.metaKey;
    const wasSelected = view.isSelected(id);
    if (add) {
      view.toggle(id);
      if (wasSelected) return;
    } else if (!wasSelected) {
      view.select([id]);
    }
    const start = toCanvas(e.clientX, e.clientY);
    const ids = new Set(view.selectedNodes());
    const grabbed = model.get(id);
    const canSplice = ids.size === 1 && loose(id);
    let moved = false;
    const onMove = (clientX, clientY) => {
      const p = toCanvas(clientX, clientY);
      let dx = p.x - start.x;
      let dy = p.y - start.y;
      if (!moved && Math.hypot(dx, dy) * zoom < DRAG_THRESHOLD) return;
      moved = true;
      if (snap && grabbed) {
        dx = snapV((Number(grabbed.x) || 0) + dx) - (Number(grabbed.x) || 0);
        dy = snapV((Number(grabbed.y) || 0) + dy) - (Number(grabbed.y) || 0);
      }
      drag = { ids, dx: Math.round(dx), dy: Math.round(dy) };
      svg.classList.add('moving');
      if (canSplice) markSplice(wireAt(p, id));
      renderSoon();
    };
    track(
      (ev) => {
        onMove(ev.clientX, ev.clientY);
        if (moved) autoScroll(ev.clientX, ev.clientY, onMove);
      },
      (ev) => {
        stopAuto();
        svg.classList.remove('moving');
        const d = drag;
        const key = aids.spliceKey;
        markSplice(null);
        drag = null;
        if (moved && d && ev.type === 'pointerup' && (d.dx || d.dy)) {
          model.update('move', (ops) => {
            for (const nid of d.ids) {
              const n = model.get(nid);
              if (n) ops.patch(nid, { x: Math.max(0, Math.round((Number(n.x) || 0) + d.dx)), y: Math.max(0, Math.round((Number(n.y) || 0) + d.dy)) });
            }
            if (key && canSplice) splice(ops, id, key);
          });
          render();
          ensureVisible([...d.ids]);
        } else if (!moved && !add && wasSelected && view.selectedNodes().length > 1) {
          view.select([id]);
        }
        render();
      },
    );
  }

  function lasso(e) {
    const add = e.shiftKey || e.ctrlKey || e.metaKey;
    const start = toCanvas(e.clientX, e.clientY);
    const rect = s('rect', { class: 'lasso', x: start.x, y: start.y, width: 0, height: 0 });
    let active = false;
    const onMove = (clientX, clientY) => {
      const p = toCanvas(clientX, clientY);
      if (!active) return;
      rect.setAttribute('x', Math.min(start.x, p.x));
      rect.setAttribute('y', Math.min(start.y, p.y));
      rect.setAttribute('width', Math.abs(p.x - start.x));
      rect.setAttribute('height', Math.abs(p.y - start.y));
    };
    track(
      (ev) => {
        const p = toCanvas(ev.clientX, ev.clientY);
        if (active) autoScroll(ev.clientX, ev.clientY, onMove);
        if (!active && Math.hypot(p.x - start.x, p.y - start.y) * zoom < DRAG_THRESHOLD) return;
        if (!active) {
          active = true;
          overlay.append(rect);
        }
        rect.setAttribute('x', Math.min(start.x, p.x));
        rect.setAttribute('y', Math.min(start.y, p.y));
        rect.setAttribute('width', Math.abs(p.x - start.x));
        rect.setAttribute('height', Math.abs(p.y - start.y));
      },
      (ev) => {
        stopAuto();
        rect.remove();
        if (!active) {
          if ((e.ctrlKey || e.metaKey) && ev.type === 'pointerup') {
            onQuickAdd({ clientX: ev.clientX, clientY: ev.clientY, x: snapV(start.x), y: snapV(start.y) });
            return;
          }
          if (!add) view.clear();
          return;
        }
        const p = toCanvas(ev.clientX, ev.clientY);
        const x1 = Math.min(start.x, p.x);
        const y1 = Math.min(start.y, p.y);
        const x2 = Math.max(start.x, p.x);
        const y2 = Math.max(start.y, p.y);
        const hits = model.nodesOn(view.tab).filter((n) => {
          const g = geometry(n);
          const o = origin(n, g);
          return o.x < x2 && o.x + g.w > x1 && o.y < y2 && o.y + g.h > y1;
        });
        view.select(
          hits.map((n) => n.id),
          { add },
        );
      },
    );
  }

  function pan(e) {
    const sx = e.clientX;
    const sy = e.clientY;
    const left = wrap.scrollLeft;
    const top = wrap.scrollTop;
    svg.classList.add('panning');
    track(
      (ev) => {
        wrap.scrollLeft = left - (ev.clientX - sx);
        wrap.scrollTop = top - (ev.clientY - sy);
      },
      () => svg.classList.remove('panning'),
    );
  }

  window.addEventListener('keydown', (e) => {
    if (e.code === 'Space' && !e.repeat && e.target === svg) {
      spaceHeld = true;
      svg.classList.add('pan-ready');
      e.preventDefault();
    }
  });
  window.addEventListener('keyup', (e) => {
    if (e.code === 'Space') {
      spaceHeld = false;
      svg.classList.remove('pan-ready');
    }
  });
  window.addEventListener('blur', () => {
    spaceHeld = false;
    svg.classList.remove('pan-ready');
  });

  // ---------------------------------------------------------- zoom

  function setZoom(z, around) {
    z = Math.min(2, Math.max(0.3, Math.round(z * 100) / 100));
    const rect = wrap.getBoundingClientRect();
    const cx = around ? around.x - rect.left : rect.width / 2;
    const cy = around ? around.y - rect.top : rect.height / 2;
    const px = (wrap.scrollLeft + cx) / zoom;
    const py = (wrap.scrollTop + cy) / zoom;
    zoom = z;
    svg.setAttribute('width', WIDTH * zoom);
    svg.setAttribute('height', HEIGHT * zoom);
    viewport.setAttribute('transform', zoom === 1 ? '' : `scale(${zoom})`);
    wrap.scrollLeft = px * zoom - cx;
    wrap.scrollTop = py * zoom - cy;
    $('#zoom-reset').textContent = `${Math.round(zoom * 100)}%`;
  }

  function step(dir) {
    const next = dir > 0 ? ZOOMS.find((z) => z > zoom + 0.001) : [...ZOOMS].reverse().find((z) => z < zoom - 0.001);
    if (next) setZoom(next);
  }

  $('#zoom-in').addEventListener('click', () => step(1));
  $('#zoom-out').addEventListener('click', () => step(-1));
  $('#zoom-reset').addEventListener('click', () => setZoom(1));
  wrap.addEventListener(
    'wheel',
    (e) => {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      setZoom(zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1), { x: e.clientX, y: e.clientY });
    },
    { passive: false },
  );

  $('#grid-snap')?.addEventListener('click', () => api.setSnap(!snap));
  svg.setAttribute('width', WIDTH);
  svg.setAttribute('height', HEIGHT);

  // ---------------------------------------------------------- wiring up

  model.on('change', render);
  view.on('selection', render);
  statuses.on('change', renderSoon);
  problems.on('change', render);
  view.on('tab', () => {
    for (const rec of els.values()) rec.el.remove();
    els.clear();
    render();
    const pos = scrolls.get(view.tab) || { left: 0, top: 0 };
    wrap.scrollLeft = pos.left;
    wrap.scrollTop = pos.top;
  });
  wrap.addEventListener('scroll', () => {
    if (view.tab) scrolls.set(view.tab, { left: wrap.scrollLeft, top: wrap.scrollTop });
  });

  const api = {
    render,
    toCanvas,
    zoomIn: () => step(1),
    zoomOut: () => step(-1),
    zoomReset: () => setZoom(1),
    /** Whether a client point is over the visible canvas. */
    isOver(clientX, clientY) {
      const r = wrap.getBoundingClientRect();
      if (clientX < r.left || clientX > r.right || clientY < r.top || clientY > r.bottom) return false;
      const hit = document.elementFromPoint(clientX, clientY);
      return !!hit && (hit === svg || svg.contains(hit) || hit === wrap || hit === emptyHint);
    },
    /** A palette drag over the page: scrolls at the edges and highlights the wire a drop would splice into. */
    dragOver(type, clientX, clientY) {
      const over = this.isOver(clientX, clientY);
      autoScroll(clientX, clientY, (x, y) => markSplice(spliceable(type) && this.isOver(x, y) ? wireAt(toCanvas(x, y), null) : null));
      markSplice(over && spliceable(type) ? wireAt(toCanvas(clientX, clientY), null) : null);
    },
    /** Ends a palette drag without a drop. */
    dragEnd() {
      stopAuto();
      markSplice(null);
    },
    drop(type, clientX, clientY) {
      const p = toCanvas(clientX, clientY);
      const key = spliceable(type) ? wireAt(p, null) : null;
      stopAuto();
      markSplice(null);
      let id = null;
      model.update('add', (ops) => {
        id = onDrop(type, Math.max(20, snapV(p.x)), Math.max(20, snapV(p.y)));
        if (id && key) splice(ops, id, key);
      });
      render();
      if (id) ensureVisible([id]);
      return id;
    },
    /** Adds a node at a canvas point (quick-add, context menu). */
    addAt(type, x, y) {
      let id = null;
      model.update('add', (ops) => {
        id = onDrop(type, Math.max(20, snapV(x)), Math.max(20, snapV(y)));
      });
      render();
      if (id) ensureVisible([id]);
      return id;
    },
    get snap() {
      return snap;
    },
    setSnap(on) {
      snap = !!on;
      try {
        localStorage.setItem(GRID_KEY, snap ? '1' : '0');
      } catch {
        /* not remembered */
      }
      $('#grid-snap')?.classList.toggle('active', snap);
      $('#grid-snap')?.setAttribute('aria-pressed', String(snap));
    },
    /** A free spot near the top left of what is visible, in canvas coordinates. */
    visibleOrigin() {
      const r = wrap.getBoundingClientRect();
      return toCanvas(r.left + 60, r.top + 60);
    },
    visibleCentre() {
      const r = wrap.getBoundingClientRect();
      return toCanvas(r.left + r.width / 2, r.top + r.height / 2);
    },
    /** Scrolls a node of the active tab into view and flashes it. */
    reveal(id) {
      const rec = els.get(id);
      const n = model.get(id);
      if (!rec || !n) return;
      const r = wrap.getBoundingClientRect();
      const x = (Number(n.x) || 0) * zoom;
      const y = (Number(n.y) || 0) * zoom;
      if (x < wrap.scrollLeft + 40 || x > wrap.scrollLeft + r.width - 40 || y < wrap.scrollTop + 40 || y > wrap.scrollTop + r.height - 40) {
        wrap.scrollLeft = x - r.width / 2;
        wrap.scrollTop = y - r.height / 2;
      }
      rec.el.classList.remove('highlight');
      void rec.el.getBoundingClientRect();
      rec.el.classList.add('highlight');
      setTimeout(() => rec.el.classList.remove('highlight'), 2200);
    },
  };
  api.setSnap(snap);
  return api;
}
