// The debug panel: live `debug` and `error` events, newest at the bottom,
// each with time, node (click to show it on the canvas), property and a
// collapsible JSON tree of the value. Text filter, "this tab only", clear;
// at most 500 entries are kept.

import { $, h, clear } from './dom.js';
import { bus } from './events.js';
import { nodeLabel, typeLabel } from './types.js';

const MAX = 500;
const PREVIEW_KEYS = 4;

function time(iso) {
  const d = iso ? new Date(iso) : new Date();
  if (Number.isNaN(d.getTime())) return String(iso || '');
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function primitive(v) {
  if (v === null) return h('span', { class: 'json-null', text: 'null' });
  switch (typeof v) {
    case 'string':
      return h('span', { class: 'json-string', text: JSON.stringify(v) });
    case 'number':
      return h('span', { class: 'json-number', text: String(v) });
    case 'boolean':
      return h('span', { class: 'json-bool', text: String(v) });
    default:
      return h('span', { class: 'json-other', text: String(v) });
  }
}

function preview(v) {
  if (Array.isArray(v)) return `array[${v.length}]`;
  const keys = Object.keys(v);
  const parts = keys.slice(0, PREVIEW_KEYS).map((k) => {
    const x = v[k];
    const t = x === null ? 'null' : Array.isArray(x) ? `array[${x.length}]` : typeof x === 'object' ? '{…}' : typeof x === 'string' ? JSON.stringify(x.length > 24 ? x.slice(0, 24) + '…' : x) : String(x);
    return `${k}: ${t}`;
  });
  return `{ ${parts.join(', ')}${keys.length > PREVIEW_KEYS ? ', …' : ''} }`;
}

/** A collapsible tree of a JSON value; children are built when first opened. */
export function jsonTree(value, key, open = false) {
  const keyEl = key === undefined ? null : h('span', { class: 'json-key', text: `${key}: ` });
  if (value === null || typeof value !== 'object') return h('div', { class: 'json-leaf' }, keyEl, primitive(value));
  const isArr = Array.isArray(value);
  const size = isArr ? value.length : Object.keys(value).length;
  const toggle = h('span', { class: 'json-toggle', 'aria-hidden': 'true' });
  const summary = h('span', { class: 'json-summary', text: size === 0 ? (isArr ? '[ ]' : '{ }') : preview(value) });
  const head = h('div', { class: 'json-head', role: 'button', tabindex: size ? 0 : -1, 'aria-expanded': 'false' }, size ? toggle : null, keyEl, summary);
  const kids = h('div', { class: 'json-children', hidden: true });
  const node = h('div', { class: ['json-node', isArr ? 'json-array' : 'json-object'] }, head, kids);
  let built = false;
  const set = (o) => {
    if (!size) return;
    if (o && !built) {
      built = true;
      const entries = isArr ? value.map((v, i) => [i, v]) : Object.entries(value);
      const shown = entries.slice(0, 1000);
      for (const [k, v] of shown) kids.append(jsonTree(v, k));
      if (entries.length > shown.length) kids.append(h('div', { class: 'json-more', text: `… ${entries.length - shown.length} more` }));
    }
    kids.hidden = !o;
    summary.textContent = o ? (isArr ? `array[${size}]` : `object`) : preview(value);
    node.classList.toggle('open', o);
    head.setAttribute('aria-expanded', String(o));
  };
  head.addEventListener('click', () => set(kids.hidden));
  head.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      set(kids.hidden);
    }
  });
  if (open) set(true);
  return node;
}

function searchText(v) {
  try {
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return (s || '').slice(0, 4000).toLowerCase();
  } catch {
    return '';
  }
}

export function createDebug({ model, view, comms }) {
  const list = $('#debug-list');
  const filter = $('#debug-filter');
  const tabOnly = $('#debug-tab-only');
  const tabButton = $('#sidebar-tabs [data-panel="debug"]');
  const entries = [];
  let unseen = 0;

  function visible(e) {
    if (tabOnly.checked && (model.get(e.nodeId)?.z || e.z) !== view.tab) return false;
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    return words.every((w) => e.text.includes(w));
  }

  function refilter() {
    for (const e of entries) e.el.hidden = !visible(e);
  }

  function add(ev, kind) {
    const src = ev.node || {};
    const nodeId = src.id || '';
    const known = model.get(nodeId);
    const name = src.name || (known ? nodeLabel(known) : '') || typeLabel(src.type || '') || nodeId;
    const data = ev.data || {};
    const link = h('button', { type: 'button', class: 'debug-node', title: `node ${nodeId}${src.type ? ` (${src.type})` : ''}`, text: name });
    link.addEventListener('click', () => bus.emit('reveal', nodeId));
    let body;
    let prop;
    let text;
    if (kind === 'error') {
      prop = 'error';
      const parts = [h('div', { class: 'debug-error-text', text: data.message || 'error' })];
      if (data.msg !== undefined && data.msg !== null) parts.push(jsonTree(data.msg, 'msg'));
      body = parts;
      text = `${data.message || ''} ${searchText(data.msg)}`;
    } else {
      prop = !data.property || data.property === 'msg' ? 'msg' : `msg.${data.property}`;
      body = [jsonTree(data.value, undefined, data.value !== null && typeof data.value === 'object' && Object.keys(data.value).length <= 6)];
      if (data.truncated) body.push(h('div', { class: 'debug-truncated', text: 'value truncated (over 64 KiB)' }));
      text = searchText(data.value);
    }
    const valueType = kind === 'error' ? '' : data.value === null ? 'null' : Array.isArray(data.value) ? `array[${data.value.length}]` : typeof data.value;
    const el = h(
      'div',
      { class: ['debug-msg', kind === 'error' && 'error'], 'data-node': nodeId },
      h('div', { class: 'debug-meta' }, h('span', { class: 'debug-time', text: time(ev.time) }), link),
      h('div', { class: 'debug-prop' }, h('span', { text: prop }), valueType ? h('span', { class: 'debug-type', text: ` : ${valueType}` }) : null),
      h('div', { class: 'debug-value' }, body),
    );
    const entry = { el, nodeId, z: src.z || known?.z || '', text: `${name} ${nodeId} ${prop} ${text}`.toLowerCase() };
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    entries.push(entry);
    el.hidden = !visible(entry);
    list.append(el);
    while (entries.length > MAX) entries.shift().el.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
    if (!tabButton.classList.contains('active')) {
      unseen++;
      tabButton.dataset.badge = unseen > 99 ? '99+' : String(unseen);
    }
  }

  filter.addEventListener('input', refilter);
  tabOnly.addEventListener('change', refilter);
  view.on('tab', refilter);
  $('#debug-clear').addEventListener('click', () => {
    entries.length = 0;
    clear(list);
  });
  tabButton.addEventListener('click', () => {
    unseen = 0;
    delete tabButton.dataset.badge;
  });

  comms.subscribe('debug', (ev) => add(ev, 'debug'));
  comms.subscribe('error', (ev) => add(ev, 'error'));

  return { add };
}
