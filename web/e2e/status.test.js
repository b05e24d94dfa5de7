// @ts-check
// A node's status reaches its badge under the node: a rate-limit that
// drops shows "dropped 1" after a second message within its window, and a
// freshly loaded editor shows the status the node already has.
import assert from 'node:assert/strict';
import { api, editorTest, emptyFlow, until } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'tick', x: 140, y: 120, payloadType: 'number', payload: '1', wires: [['rl1']] },
  { id: 'rl1', type: 'rate-limit', z: 'tab1', name: 'one per hour', x: 360, y: 120, rate: 1, per: '1h', drop: true, wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 580, y: 120, wires: [] },
];

editorTest('a status badge appears for a node that sets one', async (ed) => {
  const badge = ed.node('rl1').locator('.status');
  await ed.inject('in1');
  await ed.debugMsgs('dbg1').first().waitFor();
  await ed.inject('in1');
  await badge.locator('text', { hasText: 'dropped 1' }).waitFor();
  await ed.shot('status badge');

  // The server agrees, and a page loaded now shows the status at once.
  const r = await api('GET', '/api/status');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body?.statuses?.rl1?.text, 'dropped 1', r.text);
  await ed.reload();
  await ed.node('rl1').locator('.status text', { hasText: 'dropped 1' }).waitFor();
  // Nodes without a status show no text.
  await until(async () => (await ed.node('in1').locator('.status text').allTextContents()).every((s) => s.trim() === ''),
    'the inject node to show no status text');
  await ed.shot('status after reload');
}, { flow });
