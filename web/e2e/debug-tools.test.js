// @ts-check
// Live values are readable in the debug sidebar: an object's preview shows
// more than four keys; every element copies its path and its value; a
// pinned element opens by itself in the next messages; an element opened in
// an older message is not pushed away by the next; a debug node's button
// on the canvas switches its messages off (at once, on the server).
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows, until } from './lib/editor.js';

const payload = { site: 'north', celsius: 21.5, humidity: 40, pressure: 1013, wind: 3, rain: 0, door: 'closed', alarm: false, nested: { level: { deep: 7 } } };
const flow = [
  ...emptyFlow(),
  { id: 'go', type: 'inject', z: 'tab1', name: 'go', x: 140, y: 100, payloadType: 'json', payload: JSON.stringify(payload), wires: [['show']] },
  { id: 'show', type: 'debug', z: 'tab1', name: 'show', x: 380, y: 100, wires: [] },
];

editorTest('debug previews, copy path and value, pin, opened messages stay, the on/off button', async (ed) => {
  await ed.inject('go');
  const first = ed.debugMsgs('show').first();
  await first.waitFor();
  const summary = await first.locator('.json-summary').first().textContent();
  const shown = Object.keys(payload).filter((k) => summary?.includes(`${k}: `));
  assert.ok(shown.length >= 7, `the preview "${summary}" shows only ${shown.length} of ${Object.keys(payload).length} keys`);

  // Copy path and copy value of an element.
  await first.locator('.json-head').first().click();
  const leaf = first.locator('.json-leaf[data-path="msg.payload.humidity"]');
  await leaf.hover();
  await leaf.locator('.copy-path').click();
  await until(async () => (await ed.page.evaluate(() => navigator.clipboard.readText())) === 'msg.payload.humidity', 'the path on the clipboard');
  const nested = first.locator('.json-node[data-path="msg.payload.nested"]');
  await nested.locator('> .json-head').hover();
  await nested.locator('> .json-head .copy-value').click();
  await until(async () => {
    const t = await ed.page.evaluate(() => navigator.clipboard.readText());
    try {
      return JSON.stringify(JSON.parse(t)) === JSON.stringify(payload.nested);
    } catch {
      return false;
    }
  }, 'the value on the clipboard');

  // Pin a nested element: the next message opens it by itself.
  await nested.locator('> .json-head .pin').click();
  await ed.shot('pinned');
  await ed.inject('go');
  const second = ed.debugMsgs('show').nth(1);
  await second.waitFor();
  await second.locator('.json-node.open[data-path="msg.payload.nested"]').waitFor({ state: 'attached' });

  // An element opened in an older message stays where it is when more come.
  for (let i = 0; i < 8; i++) await ed.inject('go');
  await ed.debugMsgs('show').nth(9).waitFor();
  const older = ed.debugMsgs('show').nth(7);
  const level = older.locator('.json-node[data-path="msg.payload.nested.level"]');
  await level.locator('> .json-head').click();
  await older.locator('.json-leaf[data-path="msg.payload.nested.level.deep"]').waitFor();
  const before = await older.boundingBox();
  await ed.inject('go');
  await ed.inject('go');
  await ed.debugMsgs('show').nth(11).waitFor();
  const after = await older.boundingBox();
  assert.ok(before && after && Math.abs(before.y - after.y) < 2, `the opened message moved from ${before?.y} to ${after?.y}`);
  await ed.$('#debug-new').waitFor({ state: 'visible' });

  // The debug node's button on the canvas switches its messages off at once,
  // on the server, without a deploy…
  const button = ed.node('show').locator('.debug-button');
  assert.equal(await button.getAttribute('aria-pressed'), 'true');
  await button.click();
  await ed.node('show').locator('.debug-button.off').waitFor();
  await until(async () => (await getFlows()).flows.find((n) => n.id === 'show')?.active === false, 'the server to switch the node off');
  const count = await ed.debugMsgs('show').count();
  await ed.inject('go');
  await ed.page.waitForTimeout(800);
  assert.equal(await ed.debugMsgs('show').count(), count, 'a switched-off debug node still shows messages');
  assert.equal(await ed.$('#deploy.changed').count(), 0, 'switching a debug node marked the flow changed');
  await ed.shot('debug off');
  await button.click();
  await ed.node('show').locator('.debug-button.on').waitFor();
  await ed.inject('go');
  await until(async () => (await ed.debugMsgs('show').count()) > count, 'messages after switching the node on again');
}, { flow });
