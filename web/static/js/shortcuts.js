// The list of keyboard and mouse shortcuts, shown by "?" and from the
// context menu.

import { h } from './dom.js';

export const SHORTCUTS = [
  ['Ctrl+click on the canvas', 'add a node: search its type'],
  ['right click', 'context menu of the canvas or a node'],
  ['Ctrl+F', 'find nodes by name, type or id'],
  ['Ctrl+D', 'deploy'],
  ['Ctrl+Z / Ctrl+Shift+Z', 'undo / redo'],
  ['Ctrl+C / Ctrl+X / Ctrl+V', 'copy / cut / paste'],
  ['Ctrl+A', 'select every node of the tab'],
  ['Delete', 'delete the selection'],
  ['Enter', 'edit the selected node'],
  ['arrows (Shift: by 20)', 'move the selection'],
  ['Ctrl+I / Ctrl+E', 'import / export'],
  ['Ctrl+= / Ctrl+- / Ctrl+0', 'zoom in / out / reset'],
  ['space + drag, middle drag', 'pan'],
  ['drag a node onto a wire', 'insert it into the wire'],
  ['Escape', 'close the form, clear the selection'],
  ['?', 'this list'],
];

export function createShortcuts() {
  let dlg = null;
  function open() {
    if (!dlg) {
      const close = h('button', { type: 'button', id: 'shortcuts-close', class: 'primary', text: 'Close' });
      dlg = h(
        'dialog',
        { id: 'shortcuts-dialog', class: 'dialog' },
        h(
          'div',
          { class: 'dialog-form' },
          h('h2', { text: 'Keyboard and mouse shortcuts' }),
          h('table', { class: 'shortcut-list' }, h('tbody', null, SHORTCUTS.map(([k, what]) => h('tr', null, h('th', null, h('kbd', { text: k })), h('td', { text: what }))))),
          h('div', { class: 'dialog-buttons' }, close),
        ),
      );
      close.addEventListener('click', () => dlg.close());
      document.body.append(dlg);
    }
    if (!dlg.open) dlg.showModal();
  }
  return { open };
}
