// Input widgets for a node type's fields, one per field kind: string,
// number, int, bool, enum, json, duration, expr, text, secret, config-ref
// and table (rows of sub-fields that can be added, removed and reordered).
// Each editor returns { el, get(), setError(), clearError(), focus() };
// get() answers { value } (undefined: leave the field out) or { error }.

import { h, clear, clone } from './dom.js';
import { inline } from './markdown.js';
import { typeLabel, nodeLabel, applies } from './types.js';

export const SECRET = '__SECRET__';
const ADD_NEW = '__add_new__';
const NUMBER_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

// An example is shown as "e.g. …" so that it does not read like a value.
const example = (f) => (f.example === undefined || f.example === '' ? undefined : `e.g. ${typeof f.example === 'string' ? f.example : JSON.stringify(f.example)}`);

/** A placeholder for a table cell left empty: its default, marked as one. */
const defaultHint = (f) => (f.default === undefined || f.default === '' || f.default === null ? undefined : `default ${typeof f.default === 'string' ? f.default : JSON.stringify(f.default)}`);

function display(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : String(v);
}

function autoGrow(ta, min = 1, max = 14) {
  const fit = () => {
    const lines = ta.value.split('\n').length;
    ta.rows = Math.max(min, Math.min(max, lines));
  };
  ta.addEventListener('input', fit);
  fit();
}

/** A control for one value (no label): used for fields and table cells. */
function control(f, value, ctx, { cell = false } = {}) {
  const name = f.name;
  const ph = (cell && value === undefined ? defaultHint(f) : undefined) || example(f);
  switch (f.kind) {
    case 'bool': {
      const input = h('input', { type: 'checkbox', name, checked: value === true || (value === undefined && f.default === true) });
      return { input, el: input, get: () => ({ value: input.checked }) };
    }
    case 'enum': {
      const sel = h('select', { name });
      const opts = [...(f.enum || [])];
      const cur = display(value);
      if (!f.required && f.default === undefined) sel.append(h('option', { value: '', text: '—' }));
      for (const o of opts) sel.append(h('option', { value: o, text: o }));
      if (cur && !opts.includes(cur)) sel.append(h('option', { value: cur, text: cur }));
      sel.value = cur || (f.default !== undefined ? String(f.default) : '');
      return { input: sel, el: sel, get: () => ({ value: sel.value === '' ? undefined : sel.value }) };
    }
    case 'number':
    case 'int': {
      const input = h('input', { type: 'text', name, inputmode: f.kind === 'int' ? 'numeric' : 'decimal', value: display(value), placeholder: ph, autocomplete: 'off', spellcheck: 'false', class: 'num' });
      return {
        input,
        el: input,
        get() {
          const t = input.value.trim();
          if (t === '') return { value: undefined };
          return { value: NUMBER_RE.test(t) ? Number(t) : t };
        },
      };
    }
    case 'json': {
      const text = value === undefined ? '' : JSON.stringify(value, null, 2);
      const ta = h('textarea', { name, class: 'mono', spellcheck: 'false', placeholder: ph, value: text });
      if (!cell) autoGrow(ta, 3);
      return {
        input: ta,
        el: ta,
        get() {
          const t = ta.value.trim();
          if (t === '') return { value: undefined };
          try {
            return { value: JSON.parse(t) };
          } catch (err) {
            return { error: `not valid JSON: ${err.message}` };
          }
        },
      };
    }
    case 'expr':
    case 'text': {
      const ta = h('textarea', { name, class: f.kind === 'expr' ? 'mono expr' : 'text', spellcheck: 'false', placeholder: ph, value: display(value) });
      autoGrow(ta, cell ? 1 : f.kind === 'expr' ? 3 : 4, cell ? 6 : 16);
      return { input: ta, el: ta, get: () => ({ value: ta.value === '' && f.kind === 'text' ? undefined : ta.value }) };
    }
    case 'secret':
      return secretControl(f, value);
    case 'config-ref':
      return refControl(f, value, ctx);
    case 'duration': {
      const input = h('input', { type: 'text', name, value: display(value), placeholder: ph || (f.default !== undefined && f.default !== '' ? `default ${f.default}` : 'e.g. 5s, 500ms, 1m'), autocomplete: 'off', spellcheck: 'false', class: 'duration' });
      return { input, el: input, get: () => ({ value: input.value.trim() === '' ? undefined : input.value.trim() }) };
    }
    default: {
      const input = h('input', { type: 'text', name, value: display(value), placeholder: ph, autocomplete: 'off', spellcheck: 'false' });
      return { input, el: input, get: () => ({ value: input.value }) };
    }
  }
}

// A secret is write-only: the browser gets "__SECRET__" for a stored
// value. Left empty, the placeholder goes back and the server keeps the
// value; typing replaces it; "clear" sends "" and the server drops it; a
// ${NAME} reference is not secret and is shown as it is.
function secretControl(f, value) {
  const has = value === SECRET;
  let cleared = false;
  const input = h('input', {
    type: 'password',
    name: f.name,
    autocomplete: 'new-password',
    value: has ? '' : display(value),
    placeholder: has ? '•••• has value (leave empty to keep it)' : example(f) || '',
  });
  const show = h('button', { type: 'button', class: 'secret-show small', text: 'show', title: 'Show what you typed' });
  show.addEventListener('click', () => {
    const hidden = input.type === 'password';
    input.type = hidden ? 'text' : 'password';
    show.textContent = hidden ? 'hide' : 'show';
  });
  const el = h('div', { class: ['secret-field', has && 'has-value'] }, input, show);
  if (has) {
    const clearBtn = h('button', { type: 'button', class: 'secret-clear small', text: 'clear', title: 'Remove the stored value when you deploy' });
    clearBtn.addEventListener('click', () => {
      cleared = true;
      input.value = '';
      input.placeholder = 'the stored value is removed on deploy';
      el.classList.remove('has-value');
      clearBtn.disabled = true;
    });
    el.append(clearBtn);
  }
  return {
    input,
    el,
    get() {
      if (input.value !== '') return { value: input.value };
      if (has && !cleared) return { value: SECRET };
      return { value: value === undefined ? undefined : '' };
    },
  };
}

function refControl(f, value, ctx) {
  const sel = h('select', { name: f.name });
  const edit = h('button', { type: 'button', class: 'ref-edit small', title: `Edit the ${typeLabel(f.ref)}`, text: 'edit' });
  let current = display(value);

  function fill() {
    clear(sel);
    sel.append(h('option', { value: '', text: f.required ? `select a ${typeLabel(f.ref)}…` : 'none' }));
    const list = ctx.model.configNodes(f.ref);
    for (const n of list) sel.append(h('option', { value: n.id, text: nodeLabel(n) + (list.filter((m) => nodeLabel(m) === nodeLabel(n)).length > 1 ? ` (${n.id})` : '') }));
    if (current && !list.some((n) => n.id === current)) sel.append(h('option', { value: current, text: `${current} (missing)` }));
    sel.append(h('option', { value: ADD_NEW, text: `Add new ${typeLabel(f.ref)}…` }));
    sel.value = current;
    edit.disabled = !current || !ctx.model.has(current);
  }

  sel.addEventListener('change', async () => {
    if (sel.value !== ADD_NEW) {
      current = sel.value;
      edit.disabled = !current || !ctx.model.has(current);
      return;
    }
    sel.value = current;
    const id = await ctx.openConfig(f.ref, null);
    if (id) current = id;
    fill();
  });
  edit.addEventListener('click', async () => {
    if (!current) return;
    const id = await ctx.openConfig(f.ref, current);
    if (id === '') current = '';
    fill();
  });
  fill();
  return { input: sel, el: h('div', { class: 'ref-field' }, sel, edit), get: () => ({ value: current }) };
}

/** The bounds of a field as a short hint ("1 – 65535", "at least 1 row"). */
function rangeText(f) {
  const lo = f.min;
  const hi = f.max;
  if (lo === undefined && hi === undefined) return '';
  if (f.kind === 'table') {
    const rows = (n) => `${n} row${n === 1 ? '' : 's'}`;
    if (lo !== undefined && hi !== undefined) return `${lo} to ${rows(hi)}`;
    return lo !== undefined ? `at least ${rows(lo)}` : `at most ${rows(hi)}`;
  }
  const unit = f.kind === 'duration' ? ' s' : '';
  if (lo !== undefined && hi !== undefined) return `${lo} – ${hi}${unit}`;
  return lo !== undefined ? `at least ${lo}${unit}` : `at most ${hi}${unit}`;
}

function hint(f) {
  const range = ['int', 'number', 'duration', 'table'].includes(f.kind) ? rangeText(f) : '';
  if (!f.help && !range) return null;
  return h('div', { class: 'form-hint' }, f.help ? inline(f.help) : null, range ? h('span', { class: 'form-range', text: f.help ? ` (${range})` : range }) : null);
}

function errorEl(name, msg) {
  return h('div', { class: 'field-error', 'data-field': name, role: 'alert' }, msg);
}

/** The editor of a top-level field: label, control, hint and error line. */
export function fieldEditor(f, value, ctx) {
  if (f.kind === 'table') return tableEditor(f, value, ctx);
  const c = control(f, value, ctx);
  const id = `field-${f.name}`;
  c.input.id = id;
  const label = h('label', { for: id, class: 'form-label' }, f.label || f.name, f.required ? h('span', { class: 'required', title: 'required', text: '*' }) : null);
  const row = h('div', { class: ['form-row', `kind-${f.kind}`], 'data-field': f.name });
  if (f.kind === 'bool') {
    row.append(h('div', { class: 'form-check' }, c.el, label));
  } else {
    row.append(label, c.el);
  }
  const hintEl = hint(f);
  if (hintEl) row.append(hintEl);
  if (f.kind === 'secret') row.append(h('div', { class: 'form-hint secret-hint' }, 'Write-only: the stored value is never shown, only replaced or cleared. A ', h('code', { text: '${NAME}' }), ' reference takes it from an environment variable instead.'));
  let err = null;
  return {
    name: f.name,
    el: row,
    get: c.get,
    focus: () => c.input.focus(),
    setError(msg) {
      if (err) {
        err.textContent += `; ${msg}`;
      } else {
        err = errorEl(f.name, msg);
        row.append(err);
      }
      row.classList.add('has-error');
    },
    clearError() {
      err?.remove();
      err = null;
      row.classList.remove('has-error');
    },
  };
}

/**
 * The editor of a table field. get() also answers `order`: for each row,
 * the index it had when the form opened (null for a new row), so outputs
 * that belong to rows follow them when rows move.
 */
function tableEditor(f, value, ctx) {
  const cols = f.fields || [];
  const rows = [];
  const tbody = h('tbody');
  const head = h(
    'thead',
    null,
    h(
      'tr',
      null,
      h('th', { class: 'row-num' }),
      cols.map((c) => h('th', { title: c.help || '', 'data-col': c.name, class: c === cols[0] ? 'key-col' : null }, c.label || c.name, c.required ? h('span', { class: 'required', text: '*' }) : null)),
      h('th', { class: 'row-actions' }),
    ),
  );
  const label = h('div', { class: 'form-label' }, f.label || f.name, f.required ? h('span', { class: 'required', text: '*' }) : null);
  const addBtn = h('button', { type: 'button', class: 'table-add small', text: '+ add row' });
  const row = h('div', { class: ['form-row', 'kind-table'], 'data-field': f.name });
  const table = h('table', { class: 'table-edit', 'data-field': f.name }, head, tbody);
  row.append(label, h('div', { class: 'table-scroll' }, table), addBtn);
  const hintEl = hint(f);
  if (hintEl) row.append(hintEl);
  let err = null;

  function renumber() {
    rows.forEach((r, i) => {
      r.tr.dataset.row = i;
      r.num.textContent = String(i + 1);
      r.up.disabled = i === 0;
      r.down.disabled = i === rows.length - 1;
    });
  }

  function addRow(data, orig) {
    const controls = new Map();
    const tds = cols.map((c) => {
      const ctl = control(c, data[c.name], ctx, { cell: true });
      ctl.input.dataset.col = c.name;
      ctl.input.setAttribute('aria-label', c.label || c.name);
      if (c.help) ctl.input.title = c.help;
      controls.set(c.name, ctl);
      ctl.td = h('td', { 'data-col': c.name, class: [`kind-${c.kind}`, c === cols[0] && 'key-col'] }, ctl.el);
      return ctl.td;
    });
    const num = h('td', { class: 'row-num' });
    const up = h('button', { type: 'button', class: 'row-up icon-button', title: 'Move up', 'aria-label': 'Move row up', text: '↑' });
    const down = h('button', { type: 'button', class: 'row-down icon-button', title: 'Move down', 'aria-label': 'Move row down', text: '↓' });
    const del = h('button', { type: 'button', class: 'row-remove icon-button', title: 'Remove row', 'aria-label': 'Remove row', text: '×' });
    const tr = h('tr', { class: 'table-row' }, num, tds, h('td', { class: 'row-actions' }, up, down, del));
    const r = { tr, num, up, down, data: clone(data) || {}, orig, controls };
    up.addEventListener('click', () => move(r, -1));
    down.addEventListener('click', () => move(r, 1));
    del.addEventListener('click', () => {
      rows.splice(rows.indexOf(r), 1);
      tr.remove();
      renumber();
    });
    rows.push(r);
    tbody.append(tr);
    if (cols.some((c) => c.showIf)) {
      const refresh = () => rowShowIf(r);
      tr.addEventListener('input', refresh);
      tr.addEventListener('change', refresh);
      refresh();
    }
    return r;
  }

  /** Cells whose column does not apply to the row (its showIf) are greyed out and locked. */
  function rowShowIf(r) {
    const values = {};
    for (const [name, ctl] of r.controls) {
      const g = ctl.get();
      if (!g.error) values[name] = g.value;
    }
    for (const c of cols) {
      if (!c.showIf) continue;
      const ctl = r.controls.get(c.name);
      const on = applies(c, values, cols);
      ctl.td.classList.toggle('not-applicable', !on);
      ctl.input.disabled = !on;
      ctl.td.title = on ? c.help || '' : `Does not apply to this row (${Object.keys(c.showIf).join(', ')})`;
    }
  }

  function move(r, dir) {
    const i = rows.indexOf(r);
    const j = i + dir;
    if (j < 0 || j >= rows.length) return;
    rows.splice(i, 1);
    rows.splice(j, 0, r);
    if (dir < 0) tbody.insertBefore(r.tr, rows[j + 1].tr);
    else rows[j - 1].tr.after(r.tr);
    renumber();
    (dir < 0 ? r.up : r.down).focus();
  }

  addBtn.addEventListener('click', () => {
    // A new row leaves every cell at its default (shown as such), so
    // that a cell that does not apply carries no made-up value.
    const r = addRow({}, null);
    renumber();
    r.controls.values().next().value?.input.focus();
  });

  (Array.isArray(value) ? value : []).forEach((v, i) => addRow(v && typeof v === 'object' ? v : {}, i));
  renumber();

  return {
    name: f.name,
    el: row,
    table,
    focus: () => (rows[0]?.controls.values().next().value?.input || addBtn).focus(),
    get() {
      const out = [];
      for (const r of rows) {
        const obj = clone(r.data) || {};
        for (const c of cols) {
          const g = r.controls.get(c.name).get();
          if (g.error) return { error: `row ${rows.indexOf(r) + 1}, ${c.name}: ${g.error}` };
          if (g.value === undefined) delete obj[c.name];
          else if (!(c.name in r.data) && (JSON.stringify(g.value) === JSON.stringify(c.default) || (g.value === '' && c.default === undefined))) continue;
          else obj[c.name] = g.value;
        }
        out.push(obj);
      }
      return { value: out, order: rows.map((r) => r.orig) };
    },
    /** msg for the table, or for a cell when row (and col) are given. */
    setError(msg, rowIndex, col) {
      const r = rowIndex === undefined ? null : rows[rowIndex];
      if (r) {
        r.tr.classList.add('has-error');
        const ctl = col && r.controls.get(col);
        if (ctl) {
          ctl.input.classList.add('error');
          ctl.input.title = msg;
        }
      }
      const text = r ? `row ${rowIndex + 1}${col ? `, ${col}` : ''}: ${msg}` : msg;
      if (!err) {
        err = errorEl(f.name, text);
        row.append(err);
      } else {
        err.textContent += `; ${text}`;
      }
      row.classList.add('has-error');
    },
    clearError() {
      err?.remove();
      err = null;
      row.classList.remove('has-error');
      for (const r of rows) {
        r.tr.classList.remove('has-error');
        for (const [name, ctl] of r.controls) {
          ctl.input.classList.remove('error');
          ctl.input.title = cols.find((c) => c.name === name)?.help || '';
        }
      }
    },
  };
}
