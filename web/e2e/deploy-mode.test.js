// @ts-check
// The deploy mode select and the property form's Delete button: a full
// deploy restarts every node (the server's deploy event says so), and a
// node deleted from its form is gone from the canvas and, after the
// deploy, from the server.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, flowNodes, getFlows, until } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'tick', x: 140, y: 120, wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: 'shown', x: 360, y: 120, wires: [] },
  { id: 'dbg2', type: 'debug', z: 'tab1', name: 'spare', x: 360, y: 200, wires: [] },
];

/** The deploy events the page received. @param {string[]} frames */
function deployEvents(frames) {
  return frames
    .map((f) => { try { return JSON.parse(f); } catch { return null; } })
    .filter((m) => m?.event?.topic === 'deploy')
    .map((m) => m.event.data);
}

editorTest('a full deploy restarts every node', async (ed) => {
  await ed.$('#deploy-mode').selectOption('full');
  await ed.edit('dbg1');
  await ed.setField('name', 'shown in full');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await until(() => deployEvents(ed.framesIn).some((d) => d.mode === 'full'), 'a full deploy event');
  const full = deployEvents(ed.framesIn).find((d) => d.mode === 'full');
  for (const id of ['in1', 'dbg1', 'dbg2']) {
    assert.ok(full.started.includes(id), `a full deploy did not restart ${id}: ${JSON.stringify(full)}`);
  }
  assert.deepEqual(full.kept, [], 'a full deploy kept nodes running');
}, { flow });

editorTest('a modified-nodes deploy restarts only what changed', async (ed) => {
  await ed.$('#deploy-mode').selectOption('nodes');
  await ed.edit('dbg1');
  await ed.setField('name', 'renamed');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await until(() => deployEvents(ed.framesIn).some((d) => d.mode === 'nodes'), 'a modified-nodes deploy event');
  const partial = deployEvents(ed.framesIn).find((d) => d.mode === 'nodes');
  assert.ok(partial.started.includes('dbg1'), `the changed node was not restarted: ${JSON.stringify(partial)}`);
  assert.ok(partial.kept.includes('dbg2'), `an unchanged node was restarted: ${JSON.stringify(partial)}`);
}, { flow });

editorTest('Delete in the property form removes the node', async (ed) => {
  await ed.edit('dbg2');
  await ed.$('#form-delete').click();
  await ed.formClosed();
  await ed.node('dbg2').waitFor({ state: 'detached' });
  await ed.deploy();
  const { flows } = await getFlows();
  assert.deepEqual(flowNodes(flows).map((n) => n.id).sort(), ['dbg1', 'in1']);
}, { flow });
