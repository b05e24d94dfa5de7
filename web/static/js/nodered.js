// Node-RED flows in the editor. The Import dialog hands what was pasted to
// POST /api/nodered/import: a Node-RED export comes back converted, with a
// report shown in #nodered-report. The Export dialog gains a "for Node-RED"
// switch (#export-nodered) that asks POST /api/nodered/export for Node-RED's
// version of the same nodes. Node-RED groups are drawn as labelled frames
// behind their members.

import { $, h, s, clear } from './dom.js';

async function post(path, list) {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(list),
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    // handled below
  }
  if (!res.ok) throw new Error(body?.error?.message || `the server answered ${res.status}`);
  return body;
}

/**
 * Converts list when it is a Node-RED export. Resolves to null for a
 * tbflow flow, else to {flows, report, text, problems}.
 */
export async function convertNodeRED(list) {
  const body = await post('/api/nodered/import', list);
  return body && body.nodered ? body : null;
}

/** Node-RED's version of a tbflow node list: {flows, report}. */
export function toNodeRED(list) {
  return post('/api/nodered/export', list);
}

function reportDialog() {
  let dlg = $('#nodered-report');
  if (dlg) return dlg;
  dlg = h(
    'dialog',
    { id: 'nodered-report', class: 'dialog' },
    h(
      'form',
      { method: 'dialog', class: 'dialog-form' },
      h('h2', { text: 'Converted from Node-RED' }),
      h('p', { class: 'dialog-hint', text: 'The flow was a Node-RED export. This is what the conversion kept, changed and left out.' }),
      h('ul', { class: 'nodered-report-lines' }),
      h('div', { class: 'dialog-buttons' }, h('button', { type: 'submit', id: 'nodered-report-ok', class: 'primary', text: 'OK' })),
    ),
  );
  document.body.append(dlg);
  return dlg;
}

/** Shows a conversion result in #nodered-report. */
export function showReport(result) {
  const dlg = reportDialog();
  const ul = dlg.querySelector('.nodered-report-lines');
  clear(ul);
  const lines = String(result.text || '').split('\n').filter(Boolean);
  for (const p of result.problems || []) {
    lines.push(`${p.severity === 'warning' ? 'warning' : 'problem'}: node ${p.nodeId || ''} ${p.field || ''} ${p.message}`.replace(/\s+/g, ' '));
  }
  for (const line of lines) {
    const kind = line.startsWith('not converted') || line.startsWith('problem') ? 'bad' : line.startsWith('note') || line.startsWith('warning') ? 'note' : 'ok';
    ul.append(h('li', { class: `report-${kind}`, text: line }));
  }
  if (!dlg.open) dlg.showModal();
  return dlg;
}

/**
 * Adds the "for Node-RED" switch to the export dialog. text is the
 * dialog's textarea; refill() fills it again for the current scope.
 */
export function addExportSwitch(dialog, refill) {
  const row = dialog.querySelector('.dialog-row');
  const box = h('input', { type: 'checkbox', id: 'export-nodered' });
  const label = h('label', { class: 'export-nodered' }, box, ' for Node-RED');
  label.title = 'Write the nodes with Node-RED’s type and field names, so Node-RED loads them (transform, ThingsBoard and Modbus nodes stay tbflow nodes).';
  row?.append(' ', label);
  box.addEventListener('change', refill);
  return () => box.checked;
}

/** Fills the export textarea with Node-RED's version of list. */
export async function fillNodeRED(textarea, list, notify) {
  textarea.value = '';
  try {
    const res = await toNodeRED(list);
    textarea.value = JSON.stringify(res.flows, null, 2);
    const missing = Object.keys(res.report?.missing || {});
    if (missing.length) notify(`Node-RED will list these tbflow-only types as missing: ${missing.join(', ')}.`, { type: 'info' });
  } catch (err) {
    notify(`Export for Node-RED failed: ${err.message}`, { type: 'error' });
  }
}

/** Draws a Node-RED group: a labelled frame at its x, y, w, h, behind the nodes. */
export function drawGroup(rec, n, selected) {
  const w = Math.max(20, Number(n.w) || 200);
  const hgt = Math.max(20, Number(n.h) || 100);
  const sig = JSON.stringify([n.name, w, hgt, n.style]);
  if (rec.sig !== sig) {
    clear(rec.el);
    rec.el.setAttribute('class', 'node group');
    rec.el.style.pointerEvents = 'none'; // a frame, not a node to drag
    const st = n.style || {};
    rec.el.append(
      s('rect', {
        class: 'group-frame', x: 0, y: 0, width: w, height: hgt, rx: 6,
        style: { fill: st.fill || 'rgba(180,180,180,0.12)', stroke: st.stroke || '#999' },
      }),
    );
    if (n.name && st.label !== false) rec.el.append(s('text', { class: 'group-label', x: 8, y: 16, text: n.name }));
    rec.sig = sig;
  }
  rec.el.setAttribute('transform', `translate(${Number(n.x) || 0} ${Number(n.y) || 0})`);
  rec.el.classList.toggle('selected', selected);
  const parent = rec.el.parentNode;
  if (parent && parent.firstChild !== rec.el) parent.prepend(rec.el);
}
