// @ts-check
// Someone deploys through REST while the editor holds undeployed changes:
// the editor warns, and its own deploy, based on the older revision, is
// refused with a conflict notification and overwrites nothing.
import assert from 'node:assert/strict';
import { api, editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'original', x: 140, y: 120, payloadType: 'number', payload: '1', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 380, y: 120, wires: [] },
];

editorTest('a deploy behind the editor\'s back makes its next deploy a conflict', async (ed) => {
  // In the editor: rename the inject, not deployed yet.
  await ed.edit('in1');
  await ed.setField('name', 'from the editor');
  await ed.formDone();
  await ed.formClosed();
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });

  // Behind the editor's back: rename it through REST.
  const { flows, rev } = await getFlows();
  const theirs = flows.map((n) => (n.id === 'in1' ? { ...n, name: 'from a script' } : n));
  const r = await api('POST', '/api/flows', { flows: theirs, rev });
  assert.equal(r.status, 200, r.text);
  const theirRev = r.body.rev;
  // The editor hears of it and warns that its changes are now stale.
  await ed.notification('warning').filter({ hasText: /someone else deployed/i }).first().waitFor();
  await ed.shot('warned');

  // Its deploy is refused as a conflict.
  await ed.$('#deploy').click();
  await ed.notification('error').filter({ hasText: /someone else deployed|conflict/i }).first().waitFor();
  await ed.shot('conflict');

  const now = await getFlows();
  assert.equal(now.rev, theirRev, 'the editor\'s deploy replaced the other one');
  assert.equal(now.flows.find((n) => n.id === 'in1')?.name, 'from a script');
  // The user's change is still there to export or deploy after a reload.
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.node('in1').locator('text', { hasText: 'from the editor' }).waitFor();
}, { flow });

editorTest('an editor without changes follows a deploy made elsewhere', async (ed) => {
  const { flows, rev } = await getFlows();
  const added = { id: 'dbg2', type: 'debug', z: 'tab1', name: 'added elsewhere', x: 380, y: 220, wires: [] };
  const theirs = flows.map((n) => (n.id === 'in1' ? { ...n, wires: [['dbg1', 'dbg2']] } : n)).concat([added]);
  const r = await api('POST', '/api/flows', { flows: theirs, rev });
  assert.equal(r.status, 200, r.text);
  await ed.node('dbg2').waitFor();
  await ed.$('path.wire[data-from="in1"][data-port="0"][data-to="dbg2"]').waitFor({ state: 'attached' });
  await ed.$('#deploy:not(.changed)').waitFor({ state: 'attached' });
  await ed.shot('followed');
  // Its next change deploys against the new revision without a conflict.
  await ed.edit('dbg2');
  await ed.setField('name', 'renamed here');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  assert.equal((await getFlows()).flows.find((n) => n.id === 'dbg2')?.name, 'renamed here');
}, { flow });
