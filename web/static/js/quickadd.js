// Quick-add (Ctrl+click on the canvas, or "Add node…" in the context
// menu): a search box over the node types; Enter or a click adds the
// chosen type where the canvas was clicked.

import { h, clear } from './dom.js';
import { paletteGroups, typeLabel } from './types.js';
import { iconSvg } from './icons.js';
import { openPopup, closePopup } from './popup.js';

/** Types matching every word of a query (type, label, summary, category), best first. */
export function matchTypes(query) {
  const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const all = paletteGroups().flatMap((g) => g.types);
  const hits = all.filter((t) => {
    const text = `${t.type} ${typeLabel(t.type)} ${t.summary || ''} ${t.category || ''}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
  const q = words.join(' ');
  const rank = (t) => (typeLabel(t.type).toLowerCase() === q || t.type === q ? 0 : typeLabel(t.type).toLowerCase().startsWith(q) || t.type.startsWith(q) ? 1 : 2);
  return hits.sort((a, b) => rank(a) - rank(b));
}

export function createQuickAdd({ canvas }) {
  function open({ clientX, clientY, x, y }) {
    const input = h('input', { type: 'search', id: 'quick-add-input', placeholder: 'Search node types', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Node type' });
    const list = h('div', { class: 'quick-add-list', role: 'listbox' });
    const el = h('div', { id: 'quick-add', class: 'quick-add' }, input, list);
    let items = [];
    let active = 0;
    const choose = (type) => {
      closePopup();
      canvas.addAt(type, x, y);
    };
    const render = () => {
      clear(list);
      items = matchTypes(input.value).slice(0, 12);
      active = Math.min(active, Math.max(0, items.length - 1));
      items.forEach((t, i) => {
        const row = h('div', { class: ['quick-add-item', i === active && 'active'], role: 'option', 'data-type': t.type, style: { '--node-color': t.color || '#ddd' } }, h('span', { class: 'quick-add-icon' }, iconSvg(t.icon)), h('span', { class: 'quick-add-label', text: typeLabel(t.type) }), h('span', { class: 'quick-add-cat', text: t.category || '' }));
        row.addEventListener('pointerdown', (e) => {
          e.preventDefault();
          choose(t.type);
        });
        list.append(row);
      });
      if (!items.length) list.append(h('div', { class: 'quick-add-none', text: 'No node type matches' }));
    };
    input.addEventListener('input', () => {
      active = 0;
      render();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % Math.max(1, items.length);
        render();
      } else if (e.key === 'Enter') {
        e.preventDefault();
        if (items[active]) choose(items[active].type);
      }
    });
    render();
    openPopup(el, clientX, clientY);
    input.focus();
  }
  return { open };
}
