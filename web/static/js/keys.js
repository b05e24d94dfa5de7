// Keyboard shortcuts. None fires while typing in a text field, while a
// dialog is open, or (except Escape) while the property form is open.

import { typingTarget } from './dom.js';

export function bindKeys({ actions, history, forms, deploy, importExport, canvas, view, onEdit, search, shortcuts }) {
  const ctrlMap = {
    z: (e) => (e.shiftKey ? history.redo() : history.undo()),
    y: () => history.redo(),
    c: () => actions.copy(),
    x: () => actions.cut(),
    v: () => actions.paste(),
    a: () => actions.selectAll(),
    e: () => importExport.openExport(),
    i: () => importExport.openImport(),
    d: () => deploy.deploy(),
    '=': () => canvas.zoomIn(),
    '+': () => canvas.zoomIn(),
    '-': () => canvas.zoomOut(),
    0: () => canvas.zoomReset(),
    f: () => search.open(),
  };
  const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.isComposing) return;
    if (document.querySelector('dialog[open]')) return;
    if (!document.getElementById('login-screen').hidden) return;
    if (e.key === 'Escape') {
      if (forms.isOpen()) {
        e.preventDefault();
        forms.cancelTop();
      } else if (!typingTarget(e.target)) {
        view.clear();
      }
      return;
    }
    if (forms.isOpen() || typingTarget(e.target)) return;
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && !e.altKey) {
      const fn = ctrlMap[e.key.toLowerCase()];
      if (fn) {
        e.preventDefault();
        fn(e);
      }
      return;
    }
    if (e.altKey) return;
    if (e.key === '?') {
      e.preventDefault();
      shortcuts.open();
      return;
    }
    if (e.key === 'Delete' || e.key === 'Backspace') {
      if (actions.deleteSelection()) e.preventDefault();
      return;
    }
    if (arrows[e.key]) {
      const [dx, dy] = arrows[e.key];
      const step = e.shiftKey ? 20 : 1;
      if (actions.nudge(dx * step, dy * step)) e.preventDefault();
      return;
    }
    if (e.key === 'Enter' && !e.target.closest?.('button, a, summary, [role=button], [tabindex="0"]')) {
      const sel = view.selectedNodes();
      if (sel.length === 1) {
        e.preventDefault();
        onEdit(sel[0]);
      }
    }
  });
}
