// @ts-check
// A debug node's button switches the running node on the server at once,
// without a deploy: the switched-off node sends nothing over the WebSocket
// (not just hidden in the sidebar) while another debug node fed by the same
// inject keeps arriving; the flow is not marked changed; the state survives
// a reload; the node menu switches it on again; a switch made by a script
// through REST shows on the canvas; and a later deploy from the editor is
// not a conflict and keeps the switched states.
import assert from 'node:assert/strict';
import { api, editorTest, emptyFlow, getFlows, until } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'go', type: 'inject', z: 'tab1', name: 'go', x: 140, y: 120, payloadType: 'number', payload: '7', wires: [['quiet', 'loud']] },
  { id: 'quiet', type: 'debug', z: 'tab1', name: 'quiet', x: 380, y: 80, wires: [] },
  { id: 'loud', type: 'debug', z: 'tab1', name: 'loud', x: 380, y: 160, wires: [] },
];

/** How many debug events for node id reached the page over the WebSocket. @param {import('./lib/editor.js').Editor} ed @param {string} id */
function debugFrames(ed, id) {
  let n = 0;
  for (const f of ed.framesIn) {
    try {
      const ev = JSON.parse(f).event;
      if (ev?.topic === 'debug' && ev.node?.id === id) n++;
    } catch {
      // not JSON: not an event
    }
  }
  return n;
}

/** @param {string} id */
async function serverActive(id) {
  return (await getFlows()).flows.find((n) => n.id === id)?.active !== false;
}

editorTest('a debug node switched off and on at once on the server, without a deploy', async (ed) => {
  await ed.inject('go');
  await ed.debugMsgs('quiet').first().waitFor();
  await ed.debugMsgs('loud').first().waitFor();
  const rev0 = (await getFlows()).rev;

  // Off with the canvas button: the server switches it at once.
  await ed.node('quiet').locator('.debug-button').click();
  await ed.node('quiet').locator('.debug-button.off').waitFor();
  await until(async () => !(await serverActive('quiet')), 'the server to switch "quiet" off');
  const after = await getFlows();
  assert.notEqual(after.rev, rev0, 'the revision did not follow the switch');
  assert.equal(await ed.$('#deploy.changed').count(), 0, 'switching a debug node marked the flow changed');
  await ed.shot('quiet off');

  const quietFrames = debugFrames(ed, 'quiet');
  const quietShown = await ed.debugMsgs('quiet').count();
  const loudShown = await ed.debugMsgs('loud').count();
  for (let i = 0; i < 3; i++) await ed.inject('go');
  await until(async () => (await ed.debugMsgs('loud').count()) >= loudShown + 3, 'the other debug node to keep arriving');
  await ed.page.waitForTimeout(500);
  assert.equal(debugFrames(ed, 'quiet'), quietFrames, 'the server still sends the switched-off node\'s messages');
  assert.equal(await ed.debugMsgs('quiet').count(), quietShown, 'the sidebar shows the switched-off node\'s messages');

  // The state is the server's: a reload shows it off, nothing to deploy.
  await ed.reload();
  await ed.node('quiet').locator('.debug-button.off').waitFor();
  await ed.node('loud').locator('.debug-button.on').waitFor();
  assert.equal(await ed.$('#deploy.changed').count(), 0, 'after a reload the flow shows as changed');

  // On again through the node's menu.
  await ed.node('quiet').locator('rect.node-body').click({ button: 'right' });
  const menu = ed.$('#context-menu');
  await menu.locator('.menu-item[data-action="Show its messages"]').click();
  await ed.node('quiet').locator('.debug-button.on').waitFor();
  await until(() => serverActive('quiet'), 'the server to switch "quiet" on');
  const framesOn = debugFrames(ed, 'quiet');
  await ed.inject('go');
  await ed.debugMsgs('quiet').first().waitFor();
  await until(async () => debugFrames(ed, 'quiet') > framesOn, 'the switched-on node\'s messages on the WebSocket');
  assert.equal(await ed.$('#deploy.changed').count(), 0, 'switching on marked the flow changed');

  // A script switches "loud" off through REST: the canvas follows.
  const r = await api('POST', '/api/debug/loud/disable');
  assert.equal(r.status, 200, `POST /api/debug/loud/disable: ${r.status} ${r.text}`);
  await ed.node('loud').locator('.debug-button.off').waitFor();
  await ed.shot('loud off by a script');

  // An edit deployed after the switches is not a conflict and keeps them.
  await ed.edit('quiet');
  await ed.field('name').fill('quiet renamed');
  await ed.$('#form-done').click();
  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.deploy();
  assert.equal(await ed.notification('error').count(), 0, 'the deploy after a switch failed');
  const { flows } = await getFlows();
  const quiet = flows.find((n) => n.id === 'quiet');
  assert.equal(quiet?.name, 'quiet renamed');
  assert.notEqual(quiet?.active, false, '"quiet" is off after the deploy');
  assert.equal(flows.find((n) => n.id === 'loud')?.active, false, 'the deploy switched "loud" on again');
}, { flow });
