// @ts-check
// Keyboard shortcuts: Delete removes the selected node and its wires,
// Ctrl+Z brings them back, Ctrl+Shift+Z removes them again; Ctrl+C and
// Ctrl+V duplicate a node.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'start', x: 140, y: 120, payloadType: 'number', payload: '1', wires: [['tf1']] },
  { id: 'tf1', type: 'transform', z: 'tab1', name: 'plus one', x: 360, y: 120, expression: 'payload + 1', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 580, y: 120, wires: [] },
];

editorTest('undo, redo, copy and paste from the keyboard', async (ed) => {
  const nodes = ed.$('svg#canvas g.node');
  const wires = ed.$('path.wire');
  const tf = ed.node('tf1');

  await ed.select('tf1');
  await ed.press('Delete');
  await tf.waitFor({ state: 'detached' });
  assert.equal(await nodes.count(), 2);
  assert.equal(await wires.count(), 0, 'the transform\'s wires stayed');
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.shot('deleted');

  await ed.press('Control+Z');
  await tf.waitFor({ state: 'attached' });
  await ed.$('path.wire[data-from="in1"][data-port="0"][data-to="tf1"]').waitFor({ state: 'attached' });
  await ed.$('path.wire[data-from="tf1"][data-port="0"][data-to="dbg1"]').waitFor({ state: 'attached' });
  assert.equal(await nodes.count(), 3);
  await ed.shot('undone');

  await ed.press('Control+Shift+Z');
  await tf.waitFor({ state: 'detached' });
  assert.equal(await wires.count(), 0);
  await ed.press('Control+Z');
  await tf.waitFor({ state: 'attached' });
  assert.equal(await wires.count(), 2);
  // Nothing is left to deploy once the change is undone.
  await ed.$('#deploy:not(.changed)').waitFor({ state: 'attached' });

  await ed.select('tf1');
  await ed.press('Control+C');
  await ed.press('Control+V');
  await ed.$('svg#canvas g.node[data-type="transform"]').nth(1).waitFor({ state: 'attached' });
  // A pasted node may follow the mouse until a click drops it.
  await ed.focusCanvas();
  const ids = await ed.nodeIds('transform');
  assert.equal(ids.length, 2);
  const copy = ids.find((id) => id !== 'tf1');
  assert.ok(copy);
  // The copy keeps the settings (check the form) but gets a new id.
  await ed.edit(copy);
  assert.equal(await ed.field('expression').inputValue(), 'payload + 1');
  await ed.$('#form-cancel').click();
  await ed.formClosed();
  await ed.shot('pasted');

  await ed.press('Control+Z');
  await ed.node(copy).waitFor({ state: 'detached' });
  assert.equal(await nodes.count(), 3);
}, { flow });
