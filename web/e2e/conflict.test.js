// @ts-check
// Someone deploys through REST while the editor is open; the editor's own
// deploy, based on the older revision, is refused with a conflict
// notification and overwrites nothing.
import assert from 'node:assert/strict';
import { api, editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'original', x: 140, y: 120, payloadType: 'number', payload: '1', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 380, y: 120, wires: [] },
];

editorTest('a deploy behind the editor\'s back makes its next deploy a conflict', async (ed) => {
  // Behind the editor's back: rename the inject through REST.
  const { flows, rev } = await getFlows();
  const theirs = flows.map((n) => (n.id === 'in1' ? { ...n, name: 'from a script' } : n));
  const r = await api('POST', '/api/flows', { flows: theirs, rev });
  assert.equal(r.status, 200, r.text);
  const theirRev = r.body.rev;

  // In the editor: rename it too, and deploy.
  await ed.edit('in1');
  await ed.setField('name', 'from the editor');
  await ed.formDone();
  await ed.formClosed();
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.$('#deploy').click();
  const note = ed.$('#notify .notification.error, #notify .notification.warning').filter({ hasText: /conflict|changed|someone else|reload/i });
  await note.first().waitFor();
  await ed.shot('conflict');

  const now = await getFlows();
  assert.equal(now.rev, theirRev, 'the editor\'s deploy replaced the other one');
  assert.equal(now.flows.find((n) => n.id === 'in1')?.name, 'from a script');
  // The editor keeps the user's change to deploy again after a reload.
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
});
