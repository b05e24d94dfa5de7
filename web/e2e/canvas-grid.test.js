// @ts-check
// Grid snap (a toggle, remembered) puts moved nodes on the grid; dragging a
// node to the canvas's edge scrolls the view, and the dropped node ends up
// in view, not under the sidebar.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows, until } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'a', type: 'inject', z: 'tab1', name: 'a', x: 143, y: 117, wires: [[]] },
  { id: 'b', type: 'debug', z: 'tab1', name: 'b', x: 301, y: 233, wires: [] },
];

editorTest('grid snap, auto-scroll at the edge, the dropped node in view', async (ed) => {
  const m = ed.page.mouse;
  // Grid snap on: a moved node lands on the 20 px grid.
  assert.equal(await ed.$('#grid-snap').getAttribute('aria-pressed'), 'false');
  await ed.$('#grid-snap').click();
  assert.equal(await ed.$('#grid-snap').getAttribute('aria-pressed'), 'true');
  let box = await ed.node('a').locator('rect.node-body').boundingBox();
  assert.ok(box);
  await m.move(box.x + 30, box.y + 10);
  await m.down();
  await m.move(box.x + 60, box.y + 30, { steps: 4 });
  await m.move(box.x + 97, box.y + 53, { steps: 4 });
  await m.up();
  await ed.deploy();
  let a = (await getFlows()).flows.find((n) => n.id === 'a');
  assert.equal(a.x % 20, 0, `x ${a.x} is not on the grid`);
  assert.equal(a.y % 20, 0, `y ${a.y} is not on the grid`);
  // Remembered after a reload.
  await ed.reload();
  assert.equal(await ed.$('#grid-snap').getAttribute('aria-pressed'), 'true');
  await ed.$('#grid-snap').click();

  // Held at the right edge, the view scrolls and the node follows.
  const wrap = await ed.$('#canvas-wrap').boundingBox();
  assert.ok(wrap);
  box = await ed.node('b').locator('rect.node-body').boundingBox();
  assert.ok(box);
  await m.move(box.x + 20, box.y + 10);
  await m.down();
  await m.move(box.x + 60, box.y + 10, { steps: 4 });
  await m.move(wrap.x + wrap.width - 10, box.y + 10, { steps: 10 });
  await until(async () => (await ed.$('#canvas-wrap').evaluate((w) => w.scrollLeft)) > 200, 'the canvas to scroll at its right edge');
  await ed.shot('scrolled at the edge');
  await m.up();
  const scrolled = await ed.$('#canvas-wrap').evaluate((w) => w.scrollLeft);
  const b = (await getFlows(), await ed.node('b').locator('rect.node-body').boundingBox());
  assert.ok(b);
  const sidebar = await ed.$('#sidebar').boundingBox();
  assert.ok(sidebar);
  const view = await ed.$('#canvas-wrap').boundingBox();
  assert.ok(view);
  assert.ok(b.x + b.width <= view.x + view.width && b.x + b.width <= sidebar.x, `the dropped node (right edge ${b.x + b.width}) is under the sidebar (from ${sidebar.x})`);
  assert.ok(b.x >= view.x, 'the dropped node is off the left of the view');
  await ed.deploy();
  const moved = (await getFlows()).flows.find((n) => n.id === 'b');
  // A wire drawn to the bottom edge scrolls the view down too.
  await ed.$('#canvas-wrap').evaluate((w) => {
    w.scrollLeft = 0;
    w.scrollTop = 0;
  });
  const port = await ed.node('a').locator('.port.out').boundingBox();
  assert.ok(port);
  await m.move(port.x + 5, port.y + 5);
  await m.down();
  await m.move(port.x + 40, view.y + view.height - 8, { steps: 8 });
  await until(async () => (await ed.$('#canvas-wrap').evaluate((w) => w.scrollTop)) > 100, 'the canvas to scroll while drawing a wire at its bottom edge');
  await m.up();
  assert.ok(moved.x > 301 + scrolled - 100, `the node (x ${moved.x}) did not follow the scrolled view (${scrolled})`);
}, { flow });
