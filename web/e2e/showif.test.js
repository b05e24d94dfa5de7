// @ts-check
// Fields shown only when they apply (the spec's showIf): the inject's
// payload only for payload types that have one, a tb-connection's TLS files
// only with TLS; validation does not check a field that does not apply;
// examples read as examples ("e.g. …"), not as values.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, api } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in', type: 'inject', z: 'tab1', name: 'in', x: 120, y: 100, payloadType: 'timestamp', wires: [[]] },
  { id: 'conn', type: 'tb-connection', name: 'tb', host: '127.0.0.1', port: 1 },
  { id: 'out', type: 'tb-telemetry-out', z: 'tab1', name: 'out', connection: 'conn', x: 360, y: 100, wires: [] },
];

editorTest('fields shown only when they apply; validation skips them; examples are marked', async (ed) => {
  await ed.edit('in');
  const payload = ed.$('#node-form .form-row[data-field="payload"]');
  assert.equal(await payload.isVisible(), false, 'a timestamp inject shows a payload box');
  await ed.setField('payloadType', 'number');
  await payload.waitFor({ state: 'visible' });
  await ed.setField('payloadType', 'timestamp');
  await payload.waitFor({ state: 'hidden' });
  const schedule = await ed.field('schedule').getAttribute('placeholder');
  assert.match(schedule ?? '', /^e\.g\. /, `the schedule's placeholder "${schedule}" reads like a value`);
  await ed.shot('inject form');
  await ed.$('#form-cancel').click();
  await ed.formClosed();

  // The connection's TLS files appear only with TLS on.
  await ed.$('#sidebar-tabs [data-panel="config"]').click();
  await ed.edit('out');
  await ed.$('#node-form .ref-edit').click();
  await ed.$('#node-form .form-panel[data-type="tb-connection"]').waitFor();
  await ed.$('#node-form .form-panel[data-type="tb-connection"] .form-advanced > summary').click();
  const ca = ed.$('#node-form .form-panel[data-type="tb-connection"] .form-row[data-field="caFile"]');
  assert.equal(await ca.isVisible(), false, 'the CA file shows without TLS');
  await ed.setField('tls', true);
  await ca.waitFor({ state: 'visible' });
  await ed.shot('tls on');
  await ed.$('#form-cancel').last().click();
  await ed.$('#form-cancel').last().click();
  await ed.formClosed();

  // Validation skips what does not apply: a catch of all nodes with a broken row of nodes to watch.
  const bad = [...flow, { id: 'c', type: 'catch', z: 'tab1', scope: 'all', nodes: [{}], x: 120, y: 200, wires: [[]] }];
  let r = await api('POST', '/api/validate', bad);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual((r.body?.problems ?? []).filter((/** @type {any} */ p) => p.id === 'c'), [], r.text);
  bad[bad.length - 1].scope = 'nodes';
  r = await api('POST', '/api/validate', bad);
  assert.ok((r.body?.problems ?? []).some((/** @type {any} */ p) => p.id === 'c' && /nodes\[0\]\.node/.test(p.field)), `a row that applies is not checked: ${r.text}`);
}, { flow });
