// Ctrl+F: finds nodes of every tab (and config nodes) by name, type or id;
// Enter or a click shows the node (switching tab) and selects it.

import { h, clear } from './dom.js';
import { bus } from './events.js';
import { nodeLabel, typeLabel } from './types.js';
import { openPopup, closePopup } from './popup.js';

export function createSearch({ model }) {
  function find(query) {
    const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return [];
    return model
      .all()
      .filter((n) => n.type !== 'tab')
      .filter((n) => {
        const text = `${n.name || ''} ${nodeLabel(n)} ${n.type} ${typeLabel(n.type)} ${n.id}`.toLowerCase();
        return words.every((w) => text.includes(w));
      });
  }

  function open() {
    const input = h('input', { type: 'search', id: 'node-search-input', placeholder: 'Find nodes by name, type or id', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Find nodes' });
    const count = h('span', { class: 'node-search-count' });
    const list = h('div', { class: 'node-search-list', role: 'listbox' });
    const el = h('div', { id: 'node-search', class: 'node-search' }, h('div', { class: 'node-search-bar' }, input, count), list);
    let hits = [];
    let active = 0;
    const go = (n) => {
      closePopup();
      bus.emit('reveal', n.id);
    };
    const render = () => {
      clear(list);
      hits = find(input.value);
      active = Math.min(active, Math.max(0, hits.length - 1));
      count.textContent = input.value.trim() ? `${hits.length} found` : '';
      hits.slice(0, 50).forEach((n, i) => {
        const tab = n.z ? model.get(n.z) : null;
        const row = h(
          'div',
          { class: ['node-search-item', i === active && 'active'], role: 'option', 'data-id': n.id },
          h('span', { class: 'node-search-name', text: nodeLabel(n) }),
          h('span', { class: 'node-search-type', text: typeLabel(n.type) }),
          h('span', { class: 'node-search-where', text: tab ? nodeLabel(tab) : 'config node' }),
        );
        row.addEventListener('pointerdown', (e) => {
          e.preventDefault();
          go(n);
        });
        list.append(row);
      });
    };
    input.addEventListener('input', () => {
      active = 0;
      render();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : -1) + hits.length) % Math.max(1, hits.length);
        render();
      } else if (e.key === 'Enter') {
        e.preventDefault();
        if (hits[active]) go(hits[active]);
      }
    });
    const area = document.getElementById('editor-area').getBoundingClientRect();
    openPopup(el, area.left + area.width / 2 - 220, area.top + 44);
    input.focus();
  }
  return { open };
}
