// @ts-check
// A table field decides a node's outputs: adding a switch rule in the form
// adds an output port, which the user wires and deploys; moving a rule up
// takes its wire along.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'five', x: 140, y: 140, payloadType: 'number', payload: '5', wires: [['sw1']] },
  { id: 'sw1', type: 'switch', z: 'tab1', name: 'size', x: 360, y: 140, rules: [{ condition: 'payload > 10', label: 'big' }], mode: 'first', wires: [['big']] },
  { id: 'big', type: 'debug', z: 'tab1', name: 'big', x: 600, y: 80, wires: [] },
  { id: 'small', type: 'debug', z: 'tab1', name: 'small', x: 600, y: 220, wires: [] },
];

editorTest('switch rules in a table: a new row is a new output port, moving a row moves its wire', async (ed) => {
  assert.equal(await ed.node('sw1').locator('.port.out').count(), 1);
  await ed.edit('sw1');
  const rows = ed.$('#node-form .table-row');
  assert.equal(await rows.count(), 1);
  await ed.$('#node-form').getByRole('button', { name: /add row/i }).click();
  await rows.nth(1).waitFor();
  await rows.nth(1).locator('[name="condition"]').fill('true');
  await rows.nth(1).locator('[name="label"]').fill('small');
  await ed.shot('two rules');
  await ed.formDone();
  await ed.formClosed();

  await ed.node('sw1').locator('.port.out[data-port="1"]').waitFor({ state: 'attached' });
  await ed.wire('sw1', 1, 'small');
  await ed.deploy();
  let sw = (await getFlows()).flows.find((n) => n.id === 'sw1');
  assert.deepEqual(sw.rules.map((/** @type {any} */ r) => r.label), ['big', 'small']);
  assert.deepEqual(sw.wires, [['big'], ['small']]);

  await ed.inject('in1');
  await ed.debugMsgs('small').filter({ hasText: '5' }).first().waitFor();
  assert.equal(await ed.debugMsgs('big').count(), 0, 'payload 5 went to "big"');

  // Moving the second rule up moves its wire to port 0.
  await ed.edit('sw1');
  await rows.nth(1).getByRole('button', { name: /move row up/i }).click();
  assert.equal(await rows.nth(0).locator('[name="label"]').inputValue(), 'small');
  await ed.formDone();
  await ed.formClosed();
  await ed.$('path.wire[data-from="sw1"][data-port="0"][data-to="small"]').waitFor({ state: 'attached' });
  await ed.$('path.wire[data-from="sw1"][data-port="1"][data-to="big"]').waitFor({ state: 'attached' });
  await ed.deploy();
  sw = (await getFlows()).flows.find((n) => n.id === 'sw1');
  assert.deepEqual(sw.rules.map((/** @type {any} */ r) => r.label), ['small', 'big']);
  assert.deepEqual(sw.wires, [['small'], ['big']]);
  await ed.shot('rules reordered');
}, { flow });
