// @ts-check
// Dropping a node on a wire splices it in: the wire highlights while a
// node is dragged over it (from the palette, or an unwired node on the
// canvas), and the drop leaves the node wired on both sides — also on the
// server after a deploy.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'src', type: 'inject', z: 'tab1', name: 'source', x: 120, y: 140, wires: [['sink']] },
  { id: 'sink', type: 'debug', z: 'tab1', name: 'sink', x: 620, y: 140, wires: [] },
  { id: 'loose', type: 'transform', z: 'tab1', name: 'loose', x: 370, y: 320, expression: 'payload', wires: [[]] },
];

/** The wire's midpoint in page coordinates. @param {import('./lib/editor.js').Editor} ed @param {string} from @param {string} to */
async function midpoint(ed, from, to) {
  const p = await ed.$(`path.wire[data-from="${from}"][data-to="${to}"]`).evaluate((el) => {
    const path = /** @type {SVGPathElement} */ (/** @type {unknown} */ (el));
    const pt = path.getPointAtLength(path.getTotalLength() / 2);
    const m = path.getScreenCTM();
    const q = m ? new DOMPoint(pt.x, pt.y).matrixTransform(m) : pt;
    return { x: q.x, y: q.y };
  });
  return p;
}

editorTest('a delay dropped on a wire is wired on both sides, also after deploy', async (ed) => {
  const canvas = await ed.canvasBox();
  const mid = await midpoint(ed, 'src', 'sink');
  const entry = await ed.$('#palette .palette-node[data-type="delay"]').boundingBox();
  assert.ok(entry);
  const m = ed.page.mouse;
  await m.move(entry.x + entry.width / 2, entry.y + entry.height / 2);
  await m.down();
  await m.move(entry.x + 40, entry.y + 20, { steps: 4 });
  await m.move(mid.x, mid.y, { steps: 12 });
  await ed.$('.wire-group.splice path.wire[data-from="src"][data-to="sink"]').waitFor({ state: 'attached' });
  await ed.shot('wire highlighted under the dragged delay');
  await m.up();
  const [delay] = await ed.nodeIds('delay');
  assert.ok(delay, 'no delay was dropped');
  await ed.$(`path.wire[data-from="src"][data-to="${delay}"]`).waitFor({ state: 'attached' });
  await ed.$(`path.wire[data-from="${delay}"][data-to="sink"]`).waitFor({ state: 'attached' });
  assert.equal(await ed.$('path.wire[data-from="src"][data-to="sink"]').count(), 0, 'the old wire is still there');
  assert.equal(await ed.$('.wire-group.splice').count(), 0);
  assert.ok(canvas.width > 0);

  // An unwired node dragged from the canvas onto the new wire splices in too.
  const mid2 = await midpoint(ed, delay, 'sink');
  const body = await ed.node('loose').locator('rect.node-body').boundingBox();
  assert.ok(body);
  await m.move(body.x + body.width / 2, body.y + body.height / 2);
  await m.down();
  await m.move(body.x + body.width / 2 + 10, body.y, { steps: 3 });
  await m.move(mid2.x, mid2.y, { steps: 12 });
  await ed.$(`.wire-group.splice path.wire[data-from="${delay}"][data-to="sink"]`).waitFor({ state: 'attached' });
  await m.up();
  await ed.$(`path.wire[data-from="${delay}"][data-to="loose"]`).waitFor({ state: 'attached' });
  await ed.$('path.wire[data-from="loose"][data-to="sink"]').waitFor({ state: 'attached' });
  await ed.shot('spliced twice');

  await ed.deploy();
  const byId = new Map((await getFlows()).flows.map((n) => [n.id, n]));
  assert.deepEqual(byId.get('src').wires, [[delay]]);
  assert.deepEqual(byId.get(delay).wires, [['loose']]);
  assert.deepEqual(byId.get('loose').wires, [['sink']]);

  // One undo takes the whole splice back.
  await ed.focusCanvas();
  await ed.press('Control+Z');
  await ed.$(`path.wire[data-from="${delay}"][data-to="sink"]`).waitFor({ state: 'attached' });
  assert.equal(await ed.$('path.wire[data-from="loose"]').count(), 0);
}, { flow });
