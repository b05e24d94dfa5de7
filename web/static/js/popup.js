// A floating panel (context menu, quick-add, search) at a point: one open
// at a time, closed by Escape, a click elsewhere, or the caller.

import { h } from './dom.js';

let current = null;

export function closePopup() {
  const c = current;
  current = null;
  c?.close();
}

/** Opens el as a popup whose top left is near (x, y), kept inside the window. */
export function openPopup(el, x, y, { onClose } = {}) {
  closePopup();
  const box = h('div', { class: 'popup' }, el);
  document.body.append(box);
  const r = box.getBoundingClientRect();
  box.style.left = `${Math.max(4, Math.min(x, window.innerWidth - r.width - 8))}px`;
  box.style.top = `${Math.max(4, Math.min(y, window.innerHeight - r.height - 8))}px`;
  const outside = (e) => {
    if (!box.contains(e.target)) closePopup();
  };
  const key = (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closePopup();
    }
  };
  setTimeout(() => window.addEventListener('pointerdown', outside, true));
  window.addEventListener('keydown', key, true);
  const me = {
    box,
    close() {
      window.removeEventListener('pointerdown', outside, true);
      window.removeEventListener('keydown', key, true);
      box.remove();
      onClose?.();
    },
  };
  current = me;
  return me;
}

export const popupOpen = () => !!current;
