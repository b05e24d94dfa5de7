// @ts-check
// Names, labels and message values are text, never markup: a flow whose
// names and payloads hold HTML shows them literally on the canvas, in the
// tab, the form, the debug sidebar and the problem notification, and
// nothing in them becomes an element.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow } from './lib/editor.js';

const html = (/** @type {string} */ id) => `<i id="${id}-i">x</i>`;
const payload = '<img src="x" id="p-img"><i id="payload-i">x</i>';

const flow = [
  { ...emptyFlow()[0], label: html('tab') },
  { id: 'in1', type: 'inject', z: 'tab1', name: html('inject'), x: 200, y: 120, payloadType: 'string', payload, wires: [['tf1']] },
  { id: 'tf1', type: 'transform', z: 'tab1', name: html('transform'), x: 480, y: 120, expression: 'payload', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: html('debug'), x: 760, y: 120, wires: [] },
];

editorTest('HTML in names and payloads stays text', async (ed) => {
  const injected = async () => ed.page.locator('img[src="x"], [id$="-i"]').count();

  await ed.node('in1').waitFor();
  await ed.$('#tabs .tab', { hasText: html('tab') }).first().waitFor();
  await ed.inject('in1');
  // Strings are shown as JSON, quotes escaped.
  await ed.debugMsgs('dbg1').filter({ hasText: /<img src=.*<i id=.*payload-i/ }).first().waitFor();
  assert.ok((await ed.debugMsgs('dbg1').first().textContent())?.includes(html('debug')), 'the debug message does not name its node literally');

  // The form shows the name literally.
  await ed.edit('tf1');
  assert.equal(await ed.field('name').inputValue(), html('transform'));
  // A problem notification names the node.
  await ed.setField('expression', 'payload +');
  await ed.formDone();
  await ed.$('#node-form .field-error[data-field="expression"]').waitFor();
  await ed.formDone();
  await ed.formClosed();
  await ed.$('#deploy').click();
  await ed.notification('error').filter({ hasText: html('transform') }).first().waitFor();
  await ed.shot('markup as text');

  assert.equal(await injected(), 0, 'a name or payload became an element');
}, { flow });
