// @ts-check
// The editor's WebSocket drops (the server closes every connection at
// once): the editor shows the lost connection, reconnects by itself,
// subscribes again, and live debug messages and statuses keep arriving.
import assert from 'node:assert/strict';
import { api, editorTest, emptyFlow, env } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'ping', x: 140, y: 120, payloadType: 'string', payload: 'after the drop', wires: [['rl1']] },
  { id: 'rl1', type: 'rate-limit', z: 'tab1', name: '', x: 360, y: 120, rate: 1, per: '1h', drop: true, wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 580, y: 120, wires: [] },
];

editorTest('the editor reconnects after its WebSocket drops and keeps receiving events', async (ed) => {
  // Record every connection state the page goes through.
  await ed.page.evaluate(() => {
    const seen = [document.body.dataset.conn];
    /** @type {any} */ (window).connStates = seen;
    new MutationObserver(() => seen.push(document.body.dataset.conn)).observe(document.body, {
      attributes: true,
      attributeFilter: ['data-conn'],
    });
  });
  const opened = () => ed.log.filter((l) => l.startsWith('websocket open')).length;
  assert.equal(opened(), 1);

  const res = await fetch(env.url + '/e2e/drop-websockets', { method: 'POST' });
  assert.equal(res.status, 200);
  assert.ok(Number(await res.text()) >= 1, 'no WebSocket was open to drop');

  await ed.page.waitForFunction(() => {
    const s = /** @type {any} */ (window).connStates;
    return s.some((/** @type {string} */ c) => c !== 'open') && document.body.dataset.conn === 'open';
  });
  const states = await ed.page.evaluate(() => /** @type {any} */ (window).connStates);
  assert.ok(states.includes('closed') || states.includes('connecting'), `states seen: ${states}`);
  assert.ok(opened() >= 2, 'the editor did not open a new WebSocket');
  await ed.shot('reconnected');

  // Events flow over the new connection: a debug message and a status.
  assert.equal((await api('POST', '/api/inject/in1')).status, 204);
  await ed.debugMsgs('dbg1').filter({ hasText: 'after the drop' }).first().waitFor();
  assert.equal((await api('POST', '/api/inject/in1')).status, 204);
  await ed.node('rl1').locator('.status text', { hasText: 'dropped 1' }).waitFor();
}, { flow });
