// @ts-check
// The context menu (on a node and on the canvas), Ctrl+click quick-add with
// a type search, Ctrl+F to find nodes of any tab by name, type or id, and
// the shortcut list on "?".
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows, until } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'tab2', type: 'tab', label: 'Second' },
  { id: 'keep', type: 'inject', z: 'tab1', name: 'keep me', x: 140, y: 100, wires: [[]] },
  { id: 'gone', type: 'debug', z: 'tab1', name: 'delete me', x: 380, y: 100, wires: [] },
  { id: 'far', type: 'transform', z: 'tab2', name: 'boiler maths', x: 300, y: 200, expression: 'payload', wires: [[]] },
];

editorTest('context menu, quick-add, find, shortcuts', async (ed) => {
  // A node's context menu deletes it.
  await ed.node('gone').locator('rect.node-body').click({ button: 'right' });
  const menu = ed.$('#context-menu');
  await menu.waitFor();
  await ed.shot('node menu');
  for (const item of ['Edit', 'Disable', 'Copy', 'Delete']) assert.ok(await menu.locator(`.menu-item[data-action="${item}"]`).isVisible(), `no ${item} in the node menu`);
  await menu.locator('.menu-item[data-action="Delete"]').click();
  await ed.node('gone').waitFor({ state: 'detached' });
  await menu.waitFor({ state: 'detached' });

  // The canvas's menu adds a node through the type search.
  const c = await ed.canvasBox();
  await ed.page.mouse.click(c.x + 500, c.y + 300, { button: 'right' });
  await menu.waitFor();
  assert.ok(await menu.locator('.menu-item[data-action="Paste"]').isVisible());
  await menu.locator('.menu-item[data-action="Add node…"]').click();
  await ed.$('#quick-add-input').waitFor();
  await ed.page.keyboard.type('rate');
  await ed.$('#quick-add .quick-add-item.active[data-type="rate-limit"]').waitFor();
  await ed.press('Enter');
  await until(async () => (await ed.nodeIds('rate-limit')).length === 1, 'a rate-limit from the context menu');

  // Ctrl+click on empty canvas: quick-add at that point.
  await ed.page.keyboard.down('Control');
  await ed.page.mouse.click(c.x + 300, c.y + 420);
  await ed.page.keyboard.up('Control');
  await ed.$('#quick-add-input').waitFor();
  await ed.page.keyboard.type('dela');
  await ed.shot('quick-add');
  await ed.press('Enter');
  await until(async () => (await ed.nodeIds('delay')).length === 1, 'a delay from quick-add');
  const [delay] = await ed.nodeIds('delay');
  const body = await ed.node(delay).locator('rect.node-body').boundingBox();
  assert.ok(body && Math.abs(body.x + body.width / 2 - (c.x + 300)) < 25 && Math.abs(body.y + body.height / 2 - (c.y + 420)) < 25, 'the delay is not where the canvas was clicked');

  // Ctrl+F finds a node on another tab by name, type or id and shows it.
  await ed.focusCanvas();
  await ed.press('Control+F');
  await ed.$('#node-search-input').waitFor();
  await ed.page.keyboard.type('boiler');
  await ed.$('#node-search .node-search-item[data-id="far"]').waitFor();
  await ed.$('#node-search-input').fill('transform');
  await ed.$('#node-search .node-search-item[data-id="far"]').waitFor();
  await ed.$('#node-search-input').fill('far');
  await ed.$('#node-search .node-search-item[data-id="far"]').waitFor();
  await ed.shot('find');
  await ed.press('Enter');
  await ed.$('#tabs .tab.active[data-id="tab2"]').waitFor();
  await ed.$('svg#canvas g.node.selected[data-id="far"]').waitFor();

  // "?" lists the shortcuts.
  await ed.focusCanvas();
  await ed.press('Shift+?');
  await ed.$('#shortcuts-dialog').waitFor();
  assert.match((await ed.$('#shortcuts-dialog').textContent()) ?? '', /Ctrl\+F/);
  await ed.shot('shortcuts');
  await ed.$('#shortcuts-close').click();
  await ed.$('#shortcuts-dialog').waitFor({ state: 'hidden' });

  await ed.$('#tabs .tab[data-id="tab1"]').click();
  await ed.deploy();
  const { flows } = await getFlows();
  assert.ok(!flows.some((n) => n.id === 'gone'));
  assert.equal(flows.filter((n) => n.type === 'delay').length, 1);
}, { flow });
