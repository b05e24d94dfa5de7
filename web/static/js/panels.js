// The workspace's panels: the sidebar's tabs (Debug, Help, Config), the
// palette and the sidebar resized by dragging their edges and collapsed by
// their buttons (both remembered in localStorage), and narrower defaults
// on small screens so the canvas keeps a usable size.

import { $, $$, h } from './dom.js';
import { bus } from './events.js';

const KEY = 'tbflow.panels';
const LIMITS = { palette: [120, 420], sidebar: [220, 720] };

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || '{}') || {};
  } catch {
    return {};
  }
}

function save(state) {
  try {
    localStorage.setItem(KEY, JSON.stringify(state));
  } catch {
    /* private mode: not remembered */
  }
}

/** Default widths: narrower on small screens, so the canvas keeps most of the width. */
function defaults() {
  const w = window.innerWidth;
  if (w <= 1100) return { palette: 160, sidebar: 270 };
  if (w <= 1300) return { palette: 180, sidebar: 300 };
  return { palette: 212, sidebar: 340 };
}

export function createPanels() {
  const ws = $('#workspace');
  const state = load();

  function width(which) {
    const [lo, hi] = LIMITS[which];
    const v = Number(state[which]) || defaults()[which];
    return Math.max(lo, Math.min(hi, v));
  }

  function apply() {
    for (const which of ['palette', 'sidebar']) {
      const collapsed = !!state[`${which}Collapsed`];
      ws.style.setProperty(`--${which}-w`, collapsed ? '0px' : `${width(which)}px`);
      document.body.classList.toggle(`${which}-collapsed`, collapsed);
      const btn = $(`#${which}-toggle`);
      if (btn) {
        btn.setAttribute('aria-expanded', String(!collapsed));
        btn.title = `${collapsed ? 'Show' : 'Hide'} the ${which}`;
      }
    }
    bus.emit('layout');
  }

  function splitter(which) {
    const el = h('div', { class: ['splitter', `splitter-${which}`], id: `${which}-splitter`, role: 'separator', 'aria-orientation': 'vertical', title: `Drag to resize the ${which}` });
    el.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      const sx = e.clientX;
      const start = state[`${which}Collapsed`] ? 0 : width(which);
      document.body.classList.add('resizing');
      const move = (ev) => {
        const d = ev.clientX - sx;
        const [lo, hi] = LIMITS[which];
        const next = which === 'palette' ? start + d : start - d;
        state[`${which}Collapsed`] = next < lo / 2;
        if (!state[`${which}Collapsed`]) state[which] = Math.max(lo, Math.min(hi, Math.round(next)));
        apply();
      };
      const up = () => {
        window.removeEventListener('pointermove', move);
        window.removeEventListener('pointerup', up);
        window.removeEventListener('pointercancel', up);
        document.body.classList.remove('resizing');
        save(state);
      };
      window.addEventListener('pointermove', move);
      window.addEventListener('pointerup', up);
      window.addEventListener('pointercancel', up);
    });
    el.addEventListener('dblclick', () => {
      delete state[which];
      state[`${which}Collapsed`] = false;
      save(state);
      apply();
    });
    return el;
  }

  function toggle(which) {
    state[`${which}Collapsed`] = !state[`${which}Collapsed`];
    save(state);
    apply();
  }

  $('#editor-area').append(splitter('palette'), splitter('sidebar'));
  const pToggle = h('button', { type: 'button', id: 'palette-toggle', class: 'panel-toggle', 'aria-label': 'Toggle the palette' });
  const sToggle = h('button', { type: 'button', id: 'sidebar-toggle', class: 'panel-toggle', 'aria-label': 'Toggle the sidebar' });
  pToggle.addEventListener('click', () => toggle('palette'));
  sToggle.addEventListener('click', () => toggle('sidebar'));
  $('#editor-area').append(pToggle, sToggle);

  // The sidebar's tabs.
  for (const b of $$('#sidebar-tabs button[data-panel]')) {
    b.addEventListener('click', () => showPanel(b.dataset.panel));
  }
  function showPanel(name) {
    if (state.sidebarCollapsed) toggle('sidebar');
    for (const o of $$('#sidebar-tabs button[data-panel]')) o.classList.toggle('active', o.dataset.panel === name);
    for (const p of $$('#sidebar .sidebar-panel')) p.classList.toggle('active', p.id === (name === 'config' ? 'config-nodes' : name));
    bus.emit('panel', name);
  }

  window.addEventListener('resize', apply);
  apply();
  return { toggle, showPanel, isCollapsed: (which) => !!state[`${which}Collapsed`] };
}
