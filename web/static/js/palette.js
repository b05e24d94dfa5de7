// The palette: node types grouped by category (config nodes are reached
// through the fields that use them), a filter, and dragging a type onto
// the canvas with pointer events and a ghost that follows the pointer.

import { $, h, clear } from './dom.js';
import { paletteGroups, typeLabel } from './types.js';
import { iconSvg } from './icons.js';
import { bus } from './events.js';

const DRAG_THRESHOLD = 4;

export function createPalette({ canvas, onAdd }) {
  const list = $('#palette-list');
  const filter = $('#palette-filter');
  const collapsed = new Set();

  function entry(t) {
    const el = h(
      'div',
      {
        class: ['palette-node', t.inputs > 0 && 'has-input', (t.outputs > 0 || t.outputsField) && 'has-output'],
        'data-type': t.type,
        tabindex: 0,
        role: 'button',
        title: t.summary || typeLabel(t.type),
        style: { '--node-color': t.color || '#ddd' },
      },
      h('span', { class: 'palette-icon' }, iconSvg(t.icon)),
      h('span', { class: 'palette-label', text: typeLabel(t.type) }),
    );
    el.dataset.search = `${t.type} ${typeLabel(t.type)} ${t.summary || ''} ${t.category || ''}`.toLowerCase();
    el.addEventListener('pointerdown', (e) => startDrag(e, t.type, el));
    el.addEventListener('pointerenter', () => bus.emit('help', { type: t.type }));
    el.addEventListener('focus', () => bus.emit('help', { type: t.type }));
    el.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        const p = canvas.visibleCentre();
        onAdd(t.type, Math.round(p.x), Math.round(p.y));
      }
    });
    return el;
  }

  function build() {
    clear(list);
    for (const { category, types } of paletteGroups()) {
      const header = h(
        'button',
        { type: 'button', class: 'palette-header', 'aria-expanded': String(!collapsed.has(category)) },
        h('span', { class: 'chevron', 'aria-hidden': 'true' }),
        h('span', { text: category }),
      );
      const body = h('div', { class: 'palette-entries' }, types.map(entry));
      const group = h('section', { class: ['palette-category', collapsed.has(category) && 'collapsed'], 'data-category': category }, header, body);
      header.addEventListener('click', () => {
        if (collapsed.has(category)) collapsed.delete(category);
        else collapsed.add(category);
        group.classList.toggle('collapsed', collapsed.has(category));
        header.setAttribute('aria-expanded', String(!collapsed.has(category)));
      });
      list.append(group);
    }
    applyFilter();
  }

  function applyFilter() {
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    for (const group of list.querySelectorAll('.palette-category')) {
      let shown = 0;
      for (const el of group.querySelectorAll('.palette-node')) {
        const ok = words.every((w) => el.dataset.search.includes(w));
        el.hidden = !ok;
        if (ok) shown++;
      }
      group.hidden = shown === 0;
      group.classList.toggle('filtered', words.length > 0);
    }
  }

  filter.addEventListener('input', applyFilter);
  filter.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      filter.value = '';
      applyFilter();
      filter.blur();
    }
  });

  function startDrag(e, type, source) {
    if (e.button !== 0) return;
    e.preventDefault();
    source.focus({ preventScroll: true });
    const sx = e.clientX;
    const sy = e.clientY;
    let ghost = null;
    const move = (ev) => {
      if (!ghost) {
        if (Math.hypot(ev.clientX - sx, ev.clientY - sy) < DRAG_THRESHOLD) return;
        ghost = source.cloneNode(true);
        ghost.classList.add('palette-ghost');
        ghost.removeAttribute('tabindex');
        document.body.append(ghost);
        document.body.classList.add('dragging-node');
      }
      ghost.style.left = `${ev.clientX - 20}px`;
      ghost.style.top = `${ev.clientY - 14}px`;
      ghost.classList.toggle('over-canvas', canvas.isOver(ev.clientX, ev.clientY));
      canvas.dragOver(type, ev.clientX, ev.clientY);
    };
    const up = (ev) => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      window.removeEventListener('pointercancel', up);
      document.body.classList.remove('dragging-node');
      const dragged = !!ghost;
      ghost?.remove();
      if (dragged && ev.type === 'pointerup' && canvas.isOver(ev.clientX, ev.clientY)) canvas.drop(type, ev.clientX, ev.clientY);
      else canvas.dragEnd();
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    window.addEventListener('pointercancel', up);
  }

  return { build };
}
