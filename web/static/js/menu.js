// The context menu: right click on a node (edit, inject, debug on/off,
// enable/disable, copy, cut, duplicate, delete, help) or on the canvas
// (add a node, paste, select all, grid snap, find, shortcuts).

import { h } from './dom.js';
import { bus } from './events.js';
import { openPopup, closePopup } from './popup.js';

export function createContextMenu({ model, view, actions, canvas, forms, quickAdd, search, shortcuts, panels, onInject }) {
  function item(label, hint, fn, { disabled = false, checked } = {}) {
    const b = h('button', { type: 'button', class: 'menu-item', role: 'menuitem', disabled, 'data-action': label }, h('span', { class: 'menu-check', text: checked ? '✓' : '' }), h('span', { class: 'menu-label', text: label }), h('span', { class: 'menu-hint', text: hint || '' }));
    b.addEventListener('click', () => {
      closePopup();
      fn();
    });
    return b;
  }
  const sep = () => h('div', { class: 'menu-sep', role: 'separator' });

  function setDisabled(ids, off) {
    model.update('edit', (ops) => {
      for (const id of ids) ops.patch(id, { d: off ? true : undefined });
    });
  }

  function open(at) {
    const items = [];
    const sel = view.selectedNodes();
    if (at.node) {
      const n = model.get(at.node);
      if (!n) return;
      const many = sel.length > 1;
      if (!many) items.push(item('Edit', 'Enter', () => forms.open(n.id)));
      if (n.type === 'inject' && !many) items.push(item('Inject now', '', () => onInject(n.id)));
      if (n.type === 'debug' && !many) items.push(item(n.active === false ? 'Show its messages' : 'Hide its messages', '', () => bus.emit('debug-switch', n.id)));
      const allOff = sel.every((id) => model.get(id)?.d === true);
      items.push(item(allOff ? 'Enable' : 'Disable', '', () => setDisabled(sel, !allOff)));
      items.push(sep());
      items.push(item('Copy', 'Ctrl+C', () => actions.copy()));
      items.push(item('Cut', 'Ctrl+X', () => actions.cut()));
      items.push(item('Duplicate', '', () => {
        actions.copy();
        actions.paste();
      }));
      items.push(item('Delete', 'Delete', () => actions.deleteSelection()));
      items.push(sep());
      items.push(item('Help', '', () => {
        panels.showPanel('help');
        bus.emit('help', { type: n.type, node: n.id });
      }));
    } else if (at.wire) {
      items.push(item('Delete wire', 'Delete', () => actions.deleteSelection()));
      items.push(sep());
    }
    if (!at.node) {
      items.push(item('Add node…', 'Ctrl+click', () => quickAdd.open(at)));
      items.push(item('Paste', 'Ctrl+V', () => actions.paste(), { disabled: !actions.canPaste() }));
      items.push(item('Select all', 'Ctrl+A', () => actions.selectAll()));
      items.push(sep());
      items.push(item('Snap to grid', '', () => canvas.setSnap(!canvas.snap), { checked: canvas.snap }));
      items.push(item('Find nodes…', 'Ctrl+F', () => search.open()));
      items.push(item('Keyboard shortcuts', '?', () => shortcuts.open()));
    }
    const el = h('div', { id: 'context-menu', class: 'context-menu', role: 'menu' }, items);
    el.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      e.preventDefault();
      const all = [...el.querySelectorAll('.menu-item:not(:disabled)')];
      const i = all.indexOf(document.activeElement);
      all[(i + (e.key === 'ArrowDown' ? 1 : -1) + all.length) % all.length]?.focus();
    });
    openPopup(el, at.clientX, at.clientY);
    el.querySelector('.menu-item:not(:disabled)')?.focus();
  }
  return { open };
}
