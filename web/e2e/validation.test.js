// @ts-check
// A transform with an expression that does not compile: the deploy is
// refused, the node is marked invalid, its form shows the problem at the
// field, and the server still runs the previous flow.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: '', x: 140, y: 120, payloadType: 'number', payload: '3', wires: [['tf1']] },
  { id: 'tf1', type: 'transform', z: 'tab1', name: 'double', x: 360, y: 120, expression: 'payload * 2', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 580, y: 120, wires: [] },
];

editorTest('a broken expression: deploy refused, node invalid, field error shown', async (ed) => {
  const before = await getFlows();
  await ed.edit('tf1');
  await ed.setField('expression', 'payload * (');
  await ed.formDone();
  // Done checks the node with the server: the form stays open and shows
  // the problem at the field.
  const err = ed.$('#node-form .field-error[data-field="expression"]');
  await err.waitFor({ state: 'visible' });
  assert.notEqual((await err.textContent())?.trim() ?? '', '', 'the field error has no message');
  await ed.shot('field error on done');
  // Done again keeps the broken value; the deploy is refused.
  await ed.formDone();
  await ed.formClosed();
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.$('#deploy').click();
  await ed.notification('error').first().waitFor();
  await ed.$('svg#canvas g.node.invalid[data-id="tf1"]').waitFor({ state: 'attached' });
  await ed.shot('deploy refused');

  const after = await getFlows();
  assert.equal(after.rev, before.rev, 'the refused deploy changed the revision');
  assert.equal(after.flows.find((n) => n.id === 'tf1')?.expression, 'payload * 2');
  assert.equal(await ed.$('svg#canvas g.node.invalid').count(), 1, 'nodes other than the transform are marked invalid');

  // The form, opened again, shows the problem at the field.
  await ed.edit('tf1');
  await err.waitFor({ state: 'visible' });
  await ed.shot('field error after deploy');

  // Fixing the expression clears the mark and deploys.
  await ed.setField('expression', 'payload * 3');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await ed.$('svg#canvas g.node.invalid').waitFor({ state: 'detached' });
  assert.equal((await getFlows()).flows.find((n) => n.id === 'tf1')?.expression, 'payload * 3');
  await ed.inject('in1');
  await ed.debugMsgs('dbg1').filter({ hasText: '9' }).first().waitFor();
}, { flow });
