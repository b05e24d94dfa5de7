// @ts-check
// The function node in the editor: its code is edited in the form, its
// number of outputs draws that many ports, it deploys and each output's
// messages reach the debug node wired to it; a syntax error is shown on
// the field with its line and column before anything deploys.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'go', x: 120, y: 120, payloadType: 'number', payload: '7', wires: [['fn1']] },
  { id: 'fn1', type: 'function', z: 'tab1', name: 'split', x: 320, y: 120, func: 'return msg;', outputs: 1, wires: [['even']] },
  { id: 'even', type: 'debug', z: 'tab1', name: 'even', x: 540, y: 80, wires: [] },
  { id: 'odd', type: 'debug', z: 'tab1', name: 'odd', x: 540, y: 160, wires: [] },
];

editorTest('function: two outputs, code from the form, syntax errors on the field', async (ed) => {
  await ed.edit('fn1');
  await ed.setField('outputs', '2');
  await ed.setField('func', 'if (msg.payload % 2) return [null, {payload: "odd " + msg.payload}];\nreturn [msg, null];');
  await ed.formDone();
  await ed.formClosed();
  await ed.node('fn1').locator('rect.port.out[data-port="1"]').waitFor({ state: 'attached' });
  assert.equal(await ed.node('fn1').locator('rect.port.out').count(), 2);
  await ed.wire('fn1', 1, 'odd');
  await ed.deploy();
  const { flows } = await getFlows();
  const fn = flows.find((/** @type {any} */ n) => n.id === 'fn1');
  assert.equal(fn.outputs, 2);
  assert.deepEqual(fn.wires, [['even'], ['odd']]);
  await ed.inject('in1');
  await ed.debugMsgs('odd').filter({ hasText: 'odd 7' }).first().waitFor();
  assert.equal(await ed.debugMsgs('even').count(), 0);
  await ed.shot('odd output');

  // A syntax error is a problem on the field, with its line and column.
  await ed.edit('fn1');
  await ed.setField('func', 'return msg +;');
  await ed.formDone();
  await ed.$('#deploy').click();
  await ed.$('.field-error[data-field="func"], g.node.invalid').first().waitFor({ state: 'attached' });
  const text = await ed.page.locator('body').innerText();
  assert.match(text, /line 1, column 13/);
}, { flow });
