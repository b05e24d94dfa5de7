// The property form (#node-form): generated from the node type's fields,
// with Name, the enabled toggle, advanced fields folded away, and
// Done / Cancel / Delete. Done validates with the server and shows each
// problem under its field (table cells by row); pressing Done again with
// the same values keeps them anyway. A config node opened from a
// config-ref field ("add new…" or "edit") stacks its own form on top.

import { $, h, clear, clone, canonical } from './dom.js';
import { getType, typeLabel, nodeLabel, defaultsFor, applies } from './types.js';
import { fieldEditor } from './fields.js';
import { newId } from './ids.js';
import { inline } from './markdown.js';
import { hasErrors } from './problems.js';
import { attachNodeActions } from './nodeactions.js';

const FIELD_PATH = /^([^[.]+)(?:\[(\d+)\](?:\.([^[.]+))?)?/;

const WIDTH_KEY = 'tbflow.formWidth';
const MIN_WIDTH = 360;

export function createForms({ model, problems, confirm }) {
  const host = $('#node-form');
  const stack = [];
  const handle = h('div', { id: 'form-resize', class: 'form-resize', role: 'separator', 'aria-orientation': 'vertical', title: 'Drag to resize the form' });

  // The tray leaves the palette in view (as Node-RED's does).
  const maxWidth = () => Math.max(MIN_WIDTH, (host.parentElement?.clientWidth || window.innerWidth) - Math.max(120, document.getElementById('palette')?.offsetWidth || 0) - 16);
  function savedWidth() {
    const v = Number(localStorage.getItem(WIDTH_KEY));
    return Number.isFinite(v) && v >= MIN_WIDTH ? v : 0;
  }
  /** The tray's width: as the user left it, else wide enough for the form's tables. */
  function fitWidth(panel) {
    let w = savedWidth();
    if (!w) {
      w = 580;
      for (const t of panel.querySelectorAll('table.table-edit')) {
        const old = t.style.width;
        t.style.width = 'min-content';
        w = Math.max(w, t.offsetWidth + 48);
        t.style.width = old;
      }
    }
    host.style.width = `${Math.min(w, maxWidth())}px`;
  }
  handle.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    const right = host.getBoundingClientRect().right;
    document.body.classList.add('resizing');
    const move = (ev) => {
      host.style.width = `${Math.max(MIN_WIDTH, Math.min(maxWidth(), Math.round(right - ev.clientX)))}px`;
    };
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      window.removeEventListener('pointercancel', up);
      document.body.classList.remove('resizing');
      try {
        localStorage.setItem(WIDTH_KEY, String(parseInt(host.style.width, 10)));
      } catch {
        /* not remembered */
      }
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    window.addEventListener('pointercancel', up);
  });
  handle.addEventListener('dblclick', () => {
    localStorage.removeItem(WIDTH_KEY);
    if (top()) fitWidth(top().panel);
  });

  function top() {
    return stack[stack.length - 1];
  }

  function mount() {
    for (const el of [...host.children]) el.remove();
    host.style.width = '';
    const s = top();
    if (!s) {
      host.hidden = true;
      document.body.classList.remove('form-open');
      return;
    }
    host.append(handle, s.panel);
    host.hidden = false;
    fitWidth(s.panel);
    host.classList.toggle('stacked', stack.length > 1);
    document.body.classList.add('form-open');
  }

  /** Builds a form session for node (a copy is edited). */
  function session(node, { isNew = false, resolve = null } = {}) {
    const t = getType(node.type);
    const isConfig = !!t?.configNode || (!node.z && node.type !== 'tab');
    const sess = { node: clone(node), isNew, isConfig, resolve, editors: [], lastRejected: null, busy: false };
    const ctx = { model, openConfig };

    const title = h('div', { class: 'form-title' }, h('span', { class: 'form-swatch', style: { background: t?.color || '#ddd' } }), `${isNew ? 'Add' : 'Edit'} ${typeLabel(node.type)}${isConfig ? ' (config node)' : ''}`);
    const del = h('button', { type: 'button', id: 'form-delete', class: 'danger', text: 'Delete', hidden: isNew });
    const cancel = h('button', { type: 'button', id: 'form-cancel', text: 'Cancel' });
    const done = h('button', { type: 'button', id: 'form-done', class: 'primary', text: isNew ? 'Add' : 'Done' });
    const general = h('div', { class: 'form-problems', hidden: true });

    const nameEditor = fieldEditor({ name: 'name', kind: 'string', label: 'Name', help: isConfig ? 'A name to pick this connection by.' : 'Shown on the canvas instead of the type.', example: isConfig ? '' : typeLabel(node.type) }, node.name ?? '', ctx);
    sess.editors.push({ spec: { name: 'name', kind: 'string' }, ed: nameEditor });

    const main = h('div', { class: 'form-fields' }, nameEditor.el);
    const advancedBox = h('div', { class: 'form-fields' });
    const fields = t?.fields || [];
    for (const f of fields) {
      const ed = fieldEditor(f, node[f.name] !== undefined ? node[f.name] : clone(f.default), ctx);
      sess.editors.push({ spec: f, ed });
      (f.advanced ? advancedBox : main).append(ed.el);
    }
    // Fields that apply only to some values of others (their spec's
    // showIf) are hidden while they do not apply.
    const refreshShowIf = () => {
      const values = {};
      for (const { spec, ed } of sess.editors) {
        const g = ed.get();
        if (!g.error) values[spec.name] = g.value;
      }
      for (const { spec, ed } of sess.editors) {
        if (spec.showIf) ed.el.hidden = !applies(spec, values, fields);
      }
    };
    sess.refreshShowIf = refreshShowIf;
    const advanced = fields.some((f) => f.advanced) ? h('details', { class: 'form-advanced' }, h('summary', { text: 'Advanced' }), advancedBox) : null;

    let enabled = null;
    if (!isConfig) {
      enabled = h('input', { type: 'checkbox', id: 'form-enabled', class: 'switch', checked: node.d !== true });
      sess.enabled = enabled;
    }
    const unknown = t ? null : h('div', { class: 'form-note' }, 'This node type is unknown to the server; only its name can be edited here. Its other properties are kept as they are:', h('pre', { class: 'mono', text: JSON.stringify(node, null, 2) }));

    sess.panel = h(
      'div',
      { class: 'form-panel', 'data-id': node.id, 'data-type': node.type },
      h('div', { class: 'form-head' }, title, h('div', { class: 'form-actions' }, del, h('span', { class: 'spacer' }), cancel, done)),
      h(
        'div',
        { class: 'form-scroll' },
        general,
        t?.summary ? h('p', { class: 'form-summary' }, inline(t.summary)) : null,
        unknown,
        main,
        advanced,
        enabled ? h('div', { class: 'form-row form-enabled' }, h('label', { class: 'toggle' }, enabled, h('span', { text: 'Enabled' })), h('div', { class: 'form-hint', text: 'A disabled node is kept in the flow but does not run, and no messages pass it.' })) : null,
        h('div', { class: 'form-meta' }, h('span', null, 'id ', h('code', { text: node.id })), h('span', null, 'type ', h('code', { text: node.type }))),
      ),
    );
    sess.general = general;
    sess.panel.addEventListener('input', refreshShowIf);
    sess.panel.addEventListener('change', refreshShowIf);
    refreshShowIf();
    attachNodeActions(sess, { flows: () => flowsWith(collect(sess).node) });
    sess.done = done;
    sess.advanced = advanced;

    done.addEventListener('click', () => submit(sess));
    cancel.addEventListener('click', () => finish(sess, null));
    del.addEventListener('click', () => remove(sess));
    sess.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        submit(sess);
      }
    });
    return sess;
  }

  function collect(sess) {
    const orig = sess.node;
    const out = clone(orig);
    const errors = [];
    let order = null;
    for (const { spec, ed } of sess.editors) {
      const g = ed.get();
      if (g.error) {
        errors.push({ field: spec.name, message: g.error });
        continue;
      }
      if (g.order) order = { field: spec.name, order: g.order };
      const v = g.value;
      const had = Object.prototype.hasOwnProperty.call(orig, spec.name);
      if (v === undefined) delete out[spec.name];
      else if (!had && (canonical(v) === canonical(spec.default) || (v === '' && spec.default === undefined))) delete out[spec.name];
      else out[spec.name] = v;
    }
    if (sess.enabled) {
      if (sess.enabled.checked) delete out.d;
      else out.d = true;
    }
    const t = getType(orig.type);
    if (t?.outputsField && order && order.field === t.outputsField) {
      const old = Array.isArray(orig.wires) ? orig.wires : [];
      out.wires = order.order.map((o) => (o === null ? [] : clone(old[o] || [])));
    }
    return { node: out, errors };
  }

  function clearErrors(sess) {
    for (const { ed } of sess.editors) ed.clearError();
    clear(sess.general);
    sess.general.hidden = true;
  }

  /** Shows problems (engine or local) on their fields. */
  function showProblems(sess, list, note) {
    clearErrors(sess);
    const generalMsgs = [];
    for (const p of list) {
      const m = FIELD_PATH.exec(p.field || '');
      const entry = m && sess.editors.find((e) => e.spec.name === m[1]);
      const msg = p.severity === 'warning' ? `warning: ${p.message}` : p.message;
      if (entry) {
        entry.ed.setError(msg, m[2] === undefined ? undefined : Number(m[2]), m[3]);
        if (entry.spec.advanced && sess.advanced) sess.advanced.open = true;
      } else {
        generalMsgs.push(p.field ? `${p.field}: ${msg}` : msg);
      }
    }
    if (generalMsgs.length || note) {
      sess.general.hidden = false;
      if (note) sess.general.append(h('div', { class: 'form-problems-note', text: note }));
      for (const m of generalMsgs) sess.general.append(h('div', { class: 'field-error', 'data-field': '', text: m }));
    }
    const firstErr = sess.panel.querySelector('.has-error');
    firstErr?.scrollIntoView({ block: 'nearest' });
  }

  function flowsWith(node) {
    const flows = model.toFlows();
    const i = flows.findIndex((n) => n.id === node.id);
    if (i >= 0) flows[i] = node;
    else flows.push(node);
    return flows;
  }

  function apply(sess, node) {
    if (!sess.isNew && canonical(node) === canonical(model.get(node.id))) return;
    model.update(sess.isNew ? 'add' : 'edit', (ops) => ops.put(node));
    sess.isNew = false;
  }

  async function submit(sess) {
    if (sess.busy || top() !== sess) return;
    const { node, errors } = collect(sess);
    if (errors.length) {
      showProblems(sess, errors.map((e) => ({ ...e, severity: 'error' })));
      return;
    }
    sess.busy = true;
    sess.done.disabled = true;
    let found = [];
    try {
      found = (await problems.validate(flowsWith(node))).filter((p) => p.id === node.id);
    } catch {
      found = [];
    } finally {
      sess.busy = false;
      sess.done.disabled = false;
    }
    if (top() !== sess) return;
    const sig = canonical(node);
    if (hasErrors(found) && sess.lastRejected !== sig) {
      sess.lastRejected = sig;
      if (!sess.isNew) apply(sess, node);
      sess.node = sess.isNew ? sess.node : clone(node);
      showProblems(sess, found, 'Fix the fields marked below, or press Done again to keep the values as they are.');
      return;
    }
    apply(sess, node);
    finish(sess, node.id);
  }

  async function remove(sess) {
    const id = sess.node.id;
    if (sess.isConfig) {
      const users = model.all().filter((n) => n.type !== 'tab' && Object.values(n).includes(id) && n.id !== id);
      if (users.length) {
        const ok = await confirm(`Delete ${nodeLabel(sess.node)}?`, `${users.length} node${users.length === 1 ? ' uses' : 's use'} this ${typeLabel(sess.node.type)}; they will need another one.`, 'Delete');
        if (!ok) return;
      }
    }
    model.update('delete', (ops) => ops.remove(id));
    finish(sess, '');
  }

  function finish(sess, result) {
    const i = stack.indexOf(sess);
    if (i < 0) return;
    stack.splice(i);
    mount();
    sess.resolve?.(result);
    if (!stack.length) document.getElementById('canvas')?.focus({ preventScroll: true });
  }

  function focusFirst(sess) {
    const first = sess.panel.querySelector('.form-fields input:not([type=checkbox]), .form-fields textarea, .form-fields select');
    first?.focus({ preventScroll: true });
  }

  /** Opens a config node's form on top of the current one; resolves with its id, '' if deleted, null if cancelled. */
  function openConfig(type, id) {
    return new Promise((resolve) => {
      let node = id ? model.get(id) : null;
      const isNew = !node;
      if (!node) {
        const existing = model.configNodes(type).length;
        node = { id: newId(), type, name: existing ? `${typeLabel(type)} ${existing + 1}` : '', ...defaultsFor(type) };
      }
      const sess = session(node, { isNew, resolve });
      stack.push(sess);
      mount();
      focusFirst(sess);
    });
  }

  return {
    /** Opens the form of a node (flow or config node). */
    open(id) {
      if (stack.length) return false;
      const node = model.get(id);
      if (!node || node.type === 'tab') return false;
      const sess = session(node);
      stack.push(sess);
      mount();
      const known = problems.forNode(id);
      if (known.length) showProblems(sess, known);
      focusFirst(sess);
      return true;
    },
    isOpen: () => stack.length > 0,
    /** Cancels the topmost form (Escape). */
    cancelTop() {
      const s = top();
      if (s) finish(s, null);
    },
    /** Closes every form, discarding what is not applied (after a reload). */
    closeAll() {
      while (stack.length) finish(top(), null);
    },
    /** Done on the topmost form. */
    submitTop() {
      const s = top();
      if (s) submit(s);
    },
    current: () => top()?.node.id || null,
  };
}
