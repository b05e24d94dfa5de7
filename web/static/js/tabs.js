// Flow tabs: switch (click), add (#tab-add), rename (double-click) and
// delete (× with a confirmation when the tab holds nodes).

import { $, h } from './dom.js';
import { newId } from './ids.js';

export function createTabs({ model, view, confirm }) {
  const bar = $('#tabs');
  let renaming = null;

  const els = new Map();

  function make(id) {
    const el = h('div', { class: 'tab', 'data-id': id, role: 'tab' }, h('span', { class: 'tab-label' }), h('button', { type: 'button', class: 'tab-close', title: 'Delete this tab', 'aria-label': 'Delete this tab' }));
    el.addEventListener('pointerdown', (e) => {
      if (e.button === 0 && !e.target.closest('.tab-close, input')) view.setTab(id);
    });
    el.addEventListener('dblclick', (e) => {
      if (!e.target.closest('.tab-close, input')) rename(id);
    });
    el.querySelector('.tab-close').addEventListener('click', (e) => {
      e.stopPropagation();
      remove(id);
    });
    return el;
  }

  function render() {
    if (renaming) return;
    const tabs = model.tabs();
    const seen = new Set();
    let prev = null;
    for (const tab of tabs) {
      seen.add(tab.id);
      let el = els.get(tab.id);
      if (!el) {
        el = make(tab.id);
        els.set(tab.id, el);
      }
      if (prev ? prev.nextSibling !== el : bar.firstChild !== el) {
        if (prev) prev.after(el);
        else bar.prepend(el);
      }
      prev = el;
      const changed = model.isChanged(tab.id) || model.nodesOn(tab.id).some((n) => model.isChanged(n.id));
      const active = tab.id === view.tab;
      el.classList.toggle('active', active);
      el.classList.toggle('changed', changed);
      el.classList.toggle('disabled', tab.disabled === true);
      el.setAttribute('aria-selected', String(active));
      el.title = `${tab.label || tab.id} — double-click to rename`;
      const label = el.querySelector('.tab-label');
      if (label && label.textContent !== (tab.label || tab.id)) label.textContent = tab.label || tab.id;
      el.querySelector('.tab-close').hidden = tabs.length < 2;
    }
    for (const [id, el] of els) {
      if (!seen.has(id)) {
        el.remove();
        els.delete(id);
      }
    }
    bar.querySelector('.tab.active')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  function nextLabel() {
    const used = new Set(model.tabs().map((t) => t.label));
    let i = 1;
    while (used.has(`Flow ${i}`)) i++;
    return `Flow ${i}`;
  }

  function add() {
    const tab = { id: newId(), type: 'tab', label: nextLabel() };
    model.update('add tab', (ops) => ops.put(tab));
    view.setTab(tab.id);
    return tab.id;
  }

  function rename(id) {
    const tab = model.get(id);
    const el = bar.querySelector(`.tab[data-id="${CSS.escape(id)}"]`);
    if (!tab || !el) return;
    renaming = id;
    const input = h('input', { class: 'tab-rename', value: tab.label || '', 'aria-label': 'Tab name', spellcheck: 'false' });
    const label = el.querySelector('.tab-label');
    label.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const end = (save) => {
      if (done) return;
      done = true;
      renaming = null;
      input.replaceWith(label);
      const v = input.value.trim();
      if (save && v && v !== tab.label) model.update('rename tab', (ops) => ops.patch(id, { label: v }));
      render();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        end(true);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        end(false);
      }
    });
    input.addEventListener('blur', () => end(true));
  }

  async function remove(id) {
    const tab = model.get(id);
    if (!tab || model.tabs().length < 2) return;
    const count = model.nodesOn(id).length;
    if (count) {
      const ok = await confirm(`Delete the tab "${tab.label || id}"?`, `Its ${count} node${count === 1 ? '' : 's'} will be deleted too. You can undo this until you deploy.`, 'Delete');
      if (!ok) return;
    }
    const tabs = model.tabs();
    const i = tabs.findIndex((t) => t.id === id);
    const next = tabs[i + 1] || tabs[i - 1];
    const wasActive = view.tab === id;
    model.update('delete tab', (ops) => ops.remove(id));
    if (wasActive && next) view.setTab(next.id);
  }

  $('#tab-add').addEventListener('click', add);
  model.on('change', render);
  view.on('tab', render);

  return { render, add, rename, remove };
}
