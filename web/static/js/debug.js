// The debug panel: live `debug` and `error` events, newest at the bottom,
// each with time, node (click to show it on the canvas), property and a
// collapsible JSON tree of the value. The list follows the newest message
// unless the user has scrolled up (then "N new" jumps back down). Every
// element of a value can be copied (its path or its value) and pinned: a
// pinned path opens by itself in each later message of that node. Text
// filter, "this tab only", clear; at most 500 entries are kept.
//
// A debug node's button (and its menu item) switches the deployed node on
// or off on the server at once, without a deploy (the debug-active
// command): the flow is not marked changed, and other editors follow the
// switch/<id> events. A node not deployed yet is edited instead (the
// deploy applies it). Messages of a node switched off are not shown.

import { $, h, clear } from './dom.js';
import { bus } from './events.js';
import { nodeLabel, typeLabel } from './types.js';
import { notify } from './notify.js';

const MAX = 500;
const PREVIEW_CHARS = 110;
const NEAR_BOTTOM = 40;

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

function short(x, depth) {
  if (x === null) return 'null';
  if (Array.isArray(x)) return depth > 0 && x.length <= 4 ? `[${x.map((e) => short(e, depth - 1)).join(', ')}]` : `array[${x.length}]`;
  if (typeof x === 'object') return depth > 0 ? preview(x, depth - 1, 40) : '{…}';
  if (typeof x === 'string') return JSON.stringify(x.length > 32 ? x.slice(0, 32) + '…' : x);
  return String(x);
}

/** A one-line preview of an object or array: as many entries as fit in about max characters. */
export function preview(v, depth = 1, max = PREVIEW_CHARS) {
  if (Array.isArray(v)) {
    const parts = [];
    let len = 0;
    for (const x of v) {
      const t = short(x, depth);
      if (parts.length && len + t.length > max) break;
      parts.push(t);
      len += t.length + 2;
    }
    return `array[${v.length}] [${parts.join(', ')}${parts.length < v.length ? ', …' : ''}]`;
  }
  const keys = Object.keys(v);
  const parts = [];
  let len = 0;
  for (const k of keys) {
    const t = `${k}: ${short(v[k], depth)}`;
    if (parts.length && len + t.length > max) break;
    parts.push(t);
    len += t.length + 2;
  }
  return `{ ${parts.join(', ')}${parts.length < keys.length ? ', …' : ''} }`;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The path of a child: msg.payload.a, msg.payload[0], msg.payload["a b"]. */
export function childPath(parent, key) {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return IDENT.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

function copy(text, what) {
  const done = () => notify(`Copied ${what}`, { type: 'success', id: 'debug-copy', timeout: 1500 });
  if (navigator.clipboard?.writeText) {
    navigator.clipboard.writeText(text).then(done, () => notify('The browser did not allow copying to the clipboard.', { type: 'warning', id: 'debug-copy' }));
  }
}

function tools(path, value, pins, onPin) {
  const bCopyPath = h('button', { type: 'button', class: 'json-tool copy-path', title: `Copy path ${path}`, 'aria-label': 'Copy path', text: 'path' });
  const bCopyValue = h('button', { type: 'button', class: 'json-tool copy-value', title: 'Copy value (JSON)', 'aria-label': 'Copy value', text: 'copy' });
  bCopyPath.addEventListener('click', (e) => {
    e.stopPropagation();
    copy(path, `path ${path}`);
  });
  bCopyValue.addEventListener('click', (e) => {
    e.stopPropagation();
    copy(typeof value === 'string' ? value : JSON.stringify(value, null, 2), `value of ${path}`);
  });
  const out = [bCopyPath, bCopyValue];
  if (pins && value !== null && typeof value === 'object') {
    const pinned = pins.has(path);
    const bPin = h('button', { type: 'button', class: ['json-tool', 'pin', pinned && 'pinned'], title: pinned ? 'Unpin: stop opening this in new messages' : 'Pin: open this in every new message of this node', 'aria-pressed': String(pinned), 'aria-label': 'Pin open', text: pinned ? 'unpin' : 'pin' });
    bPin.addEventListener('click', (e) => {
      e.stopPropagation();
      onPin(path, !pins.has(path));
    });
    out.push(bPin);
  }
  return h('span', { class: 'json-tools' }, out);
}

/** Whether path or anything below it is pinned. */
function pinnedAt(pins, path) {
  if (!pins?.size) return false;
  for (const p of pins) if (p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}[`)) return true;
  return false;
}

/**
 * A collapsible tree of a JSON value; children are built when first opened.
 * opts: path (of the value, for copy path), pins (a Set of pinned paths
 * opened by themselves), onPin(path, on), onToggle(open) for user clicks.
 */
export function jsonTree(value, key, open = false, opts = {}) {
  const path = opts.path || 'value';
  const keyEl = key === undefined ? null : h('span', { class: 'json-key', text: `${key}: ` });
  const tl = tools(path, value, opts.pins, opts.onPin);
  if (value === null || typeof value !== 'object') return h('div', { class: 'json-leaf', 'data-path': path }, keyEl, primitive(value), tl);
  const isArr = Array.isArray(value);
  const size = isArr ? value.length : Object.keys(value).length;
  const toggle = h('span', { class: 'json-toggle', 'aria-hidden': 'true' });
  const summary = h('span', { class: 'json-summary', text: size === 0 ? (isArr ? '[ ]' : '{ }') : preview(value) });
  const head = h('div', { class: 'json-head', role: 'button', tabindex: size ? 0 : -1, 'aria-expanded': 'false' }, size ? toggle : null, keyEl, summary, tl);
  const kids = h('div', { class: 'json-children', hidden: true });
  const node = h('div', { class: ['json-node', isArr ? 'json-array' : 'json-object', opts.pins?.has(path) && 'pinned'], 'data-path': path }, head, kids);
  let built = false;
  const set = (o) => {
    if (!size) return;
    if (o && !built) {
      built = true;
      const entries = isArr ? value.map((v, i) => [i, v]) : Object.entries(value);
      const shown = entries.slice(0, 1000);
      for (const [k, v] of shown) {
        const p = childPath(path, k);
        kids.append(jsonTree(v, k, pinnedAt(opts.pins, p), { ...opts, path: p }));
      }
      if (entries.length > shown.length) kids.append(h('div', { class: 'json-more', text: `… ${entries.length - shown.length} more` }));
    }
    kids.hidden = !o;
    summary.textContent = o ? (isArr ? `array[${size}]` : `object`) : preview(value);
    node.classList.toggle('open', o);
    head.setAttribute('aria-expanded', String(o));
  };
  head.addEventListener('click', (e) => {
    if (e.target.closest('.json-tool')) return;
    set(kids.hidden);
    opts.onToggle?.(!kids.hidden);
  });
  head.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      set(kids.hidden);
      opts.onToggle?.(!kids.hidden);
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
  const panel = $('#debug');
  const marker = h('button', { type: 'button', id: 'debug-new', class: 'debug-new', hidden: true, title: 'Show the newest message and follow again' });
  panel.append(marker);
  const entries = [];
  /** node id → Set of pinned paths */
  const pins = new Map();
  let unseen = 0;
  let follow = true;
  let behind = 0;
  let programmatic = false;

  const shown = () => list.clientHeight > 0;
  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM;

  function toBottom() {
    programmatic = true;
    list.scrollTop = list.scrollHeight;
    follow = true;
    behind = 0;
    marker.hidden = true;
    requestAnimationFrame(() => {
      programmatic = false;
    });
  }

  function updateMarker() {
    marker.hidden = follow || behind === 0;
    marker.textContent = `${behind > 999 ? '999+' : behind} new ↓`;
  }

  list.addEventListener('scroll', () => {
    if (!shown() || programmatic) return;
    follow = atBottom();
    if (follow) behind = 0;
    updateMarker();
  });
  marker.addEventListener('click', toBottom);
  bus.on('panel', (name) => {
    if (name === 'debug' && follow) toBottom();
  });

  function visible(e) {
    if (tabOnly.checked && (model.get(e.nodeId)?.z || e.z) !== view.tab) return false;
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    return words.every((w) => e.text.includes(w));
  }

  function refilter() {
    for (const e of entries) e.el.hidden = !visible(e);
    if (follow) toBottom();
  }

  function pinSet(nodeId) {
    if (!pins.has(nodeId)) pins.set(nodeId, new Set());
    return pins.get(nodeId);
  }

  function add(ev, kind) {
    const src = ev.node || {};
    const nodeId = src.id || '';
    const known = model.get(nodeId);
    // A debug node switched off shows nothing, also what was on its way.
    if (kind === 'debug' && known && known.type === 'debug' && known.active === false) return;
    const name = src.name || (known ? nodeLabel(known) : '') || typeLabel(src.type || '') || nodeId;
    const data = ev.data || {};
    const link = h('button', { type: 'button', class: 'debug-node', title: `node ${nodeId}${src.type ? ` (${src.type})` : ''}`, text: name });
    link.addEventListener('click', () => bus.emit('reveal', nodeId));
    const myPins = pinSet(nodeId);
    const onPin = (path, on) => {
      if (on) myPins.add(path);
      else myPins.delete(path);
      for (const b of list.querySelectorAll(`.debug-msg[data-node="${CSS.escape(nodeId)}"] [data-path="${CSS.escape(path)}"] > .json-head .pin, .debug-msg[data-node="${CSS.escape(nodeId)}"] [data-path="${CSS.escape(path)}"] > .json-tools .pin`)) {
        b.classList.toggle('pinned', on);
        b.textContent = on ? 'unpin' : 'pin';
        b.setAttribute('aria-pressed', String(on));
      }
    };
    // Opening an element of an older message stops following, so the
    // next message does not push it away.
    const onToggle = (open) => {
      if (open && el !== list.lastElementChild) {
        follow = false;
        updateMarker();
      }
    };
    let body;
    let prop;
    let text;
    if (kind === 'error') {
      prop = 'error';
      const parts = [h('div', { class: 'debug-error-text', text: data.message || 'error' })];
      if (data.msg !== undefined && data.msg !== null) parts.push(jsonTree(data.msg, 'msg', false, { path: 'msg', onToggle }));
      body = parts;
      text = `${data.message || ''} ${searchText(data.msg)}`;
    } else {
      prop = !data.property || data.property === 'msg' ? 'msg' : `msg.${data.property}`;
      const v = data.value;
      const small = v !== null && typeof v === 'object' && Object.keys(v).length <= 6;
      body = [jsonTree(v, undefined, small || pinnedAt(myPins, prop), { path: prop, pins: myPins, onPin, onToggle })];
      if (data.truncated) body.push(h('div', { class: 'debug-truncated', text: 'value truncated (over 64 KiB)' }));
      text = searchText(v);
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
    entries.push(entry);
    el.hidden = !visible(entry);
    list.append(el);
    // Old entries go; a reader scrolled up keeps their place (the
    // browser's scroll anchoring).
    while (entries.length > MAX) entries.shift().el.remove();
    if (follow) {
      if (shown()) toBottom();
    } else if (!el.hidden) {
      behind++;
      updateMarker();
    }
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
    follow = true;
    behind = 0;
    updateMarker();
  });
  tabButton.addEventListener('click', () => {
    unseen = 0;
    delete tabButton.dataset.badge;
  });

  comms.subscribe('debug', (ev) => add(ev, 'debug'));
  comms.subscribe('error', (ev) => add(ev, 'error'));

  /** Switches debug node id on or off: on the server when it is deployed. */
  async function switchNode(id) {
    const n = model.get(id);
    if (!n || n.type !== 'debug') return;
    const on = n.active === false;
    const edit = () => model.update('edit', (ops) => ops.patch(id, { active: on }));
    if (!model.isDeployed(id) || n.d === true) {
      edit();
      return;
    }
    model.switchDeployed(id, { active: on });
    try {
      const res = await comms.request('debug-active', { id, active: on });
      model.switchDeployed(id, { active: res.active !== false }, res.rev, res.prev);
    } catch (err) {
      model.switchDeployed(id, { active: !on });
      if (err.code === 'not_found') {
        // Deployed in this editor's view but not running on the server
        // (its tab is disabled, or the flow changed): edit it instead.
        edit();
        notify(`${nodeLabel(n)} is not running: deploy to apply the switch.`, { type: 'warning', id: 'debug-switch' });
      } else {
        notify(`Could not switch ${nodeLabel(n)} ${on ? 'on' : 'off'}: ${err.message}`, { type: 'error', id: 'debug-switch' });
      }
    }
  }
  bus.on('debug-switch', switchNode);
  // Switches made by other editors, or scripts, through the REST mirror.
  comms.subscribe('switch/+', (ev) => {
    const id = ev.node?.id;
    const d = ev.data || {};
    if (id && model.get(id) && typeof d.active === 'boolean') model.switchDeployed(id, { active: d.active }, d.rev, d.prev);
  });

  return { add };
}
