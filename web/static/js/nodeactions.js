// Node actions in the property form. A node type may offer actions that
// fill one of its fields, or a column of a table field ("items.nodeId"),
// listed by GET /api/nodes/{type}/actions: opcua-in's "browse" picks node
// ids from the server's address space. For each, a button (its label,
// "Browse…") beside the field opens a picker fed by POST
// /api/nodes/{type}/actions/{name} with the settings being edited. A
// picking action answers {nodeId, children: [{nodeId, browseName,
// displayName, nodeClass, dataType}]}: an Object opens its children, a
// Variable fills the field (in a table: a new row, with the key column
// set to its browse name when empty).

import { h, clear } from './dom.js';

const lists = new Map();

function actionsOf(type) {
  if (!lists.has(type)) {
    const p = fetch(`/api/nodes/${encodeURIComponent(type)}/actions`, { credentials: 'same-origin', cache: 'no-store' })
      .then((res) => (res.ok ? res.json() : []))
      .catch(() => []);
    lists.set(type, p);
  }
  return lists.get(type);
}

async function run(type, name, body) {
  const res = await fetch(`/api/nodes/${encodeURIComponent(type)}/actions/${encodeURIComponent(name)}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data?.error?.message || `${res.status} ${res.statusText}`);
  return data.result;
}

/**
 * Adds the buttons of the node type's actions to a form session.
 * flows() returns the flow as edited (the node with the form's values).
 */
export function attachNodeActions(sess, { flows }) {
  actionsOf(sess.node.type).then((list) => {
    for (const a of Array.isArray(list) ? list : []) {
      if (a.field) attach(sess, a, flows);
    }
  });
}

function attach(sess, action, flows) {
  const [field, col] = action.field.split('.');
  const row = sess.panel.querySelector(`.form-row[data-field="${CSS.escape(field)}"]`);
  if (!row || row.querySelector(`.node-action[data-action="${CSS.escape(action.name)}"]`)) return;
  const btn = h('button', { type: 'button', class: 'small node-action', 'data-action': action.name, text: action.label || action.name, title: action.help || '' });
  const picker = h('div', { class: 'node-action-picker', hidden: true });
  row.append(btn, picker);
  const trail = [];

  async function show(nodeId) {
    clear(picker);
    picker.hidden = false;
    picker.append(h('div', { class: 'form-hint', text: 'Loading…' }));
    let res;
    try {
      res = await run(sess.node.type, action.name, { flows: flows(), node: sess.node.id, args: nodeId ? { nodeId } : {} });
    } catch (err) {
      clear(picker);
      picker.append(h('div', { class: 'field-error', role: 'alert', text: err.message }), h('button', { type: 'button', class: 'small', text: 'Close', on: { click: close } }));
      return;
    }
    clear(picker);
    const head = h('div', { class: 'node-action-head' }, h('code', { text: res.nodeId }));
    if (trail.length > 1) head.append(h('button', { type: 'button', class: 'small', text: '↑ up', on: { click: () => { trail.pop(); show(trail[trail.length - 1]); } } }));
    head.append(h('button', { type: 'button', class: 'small', text: 'Close', on: { click: close } }));
    const list = h('ul', { class: 'node-action-list' });
    for (const c of res.children || []) {
      const isVar = c.nodeClass === 'Variable';
      const item = h('button', { type: 'button', class: 'link', 'data-node-id': c.nodeId, title: c.nodeId },
        `${isVar ? '◦' : '▸'} ${c.displayName || c.browseName}`, c.dataType ? h('span', { class: 'form-hint', text: ` ${c.dataType}` }) : null);
      item.addEventListener('click', () => {
        if (isVar) pick(c);
        else {
          trail.push(c.nodeId);
          show(c.nodeId);
        }
      });
      list.append(h('li', null, item));
    }
    if (!res.children?.length) list.append(h('li', { class: 'form-hint', text: 'nothing here' }));
    if (res.truncated) list.append(h('li', { class: 'form-hint', text: 'more not shown' }));
    picker.append(head, list);
  }

  function close() {
    picker.hidden = true;
    clear(picker);
  }

  function setInput(input, v) {
    input.value = v;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.dispatchEvent(new Event('change', { bubbles: true }));
  }

  function pick(c) {
    if (col) {
      row.querySelector('.table-add')?.click();
      const rows = row.querySelectorAll('tr.table-row');
      const last = rows[rows.length - 1];
      const cell = (name) => last?.querySelector(`:is(input, textarea, select)[data-col="${CSS.escape(name)}"]`);
      const target = cell(col);
      if (target) setInput(target, c.nodeId);
      const key = cell('key');
      if (key && !key.value) setInput(key, c.browseName || c.displayName || '');
    } else {
      const input = row.querySelector('input, textarea, select');
      if (input) setInput(input, c.nodeId);
    }
  }

  btn.addEventListener('click', () => {
    trail.length = 0;
    trail.push('');
    show('');
  });
}
