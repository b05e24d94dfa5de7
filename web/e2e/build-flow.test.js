// @ts-check
// A user builds inject → transform → debug from the palette with the
// mouse, sets the inject's payload and the transform's expression in their
// forms, deploys, presses the inject button and reads the result in the
// debug sidebar; the server holds the three nodes wired in that order.
import assert from 'node:assert/strict';
import { editorTest, getFlows } from './lib/editor.js';

editorTest('build inject → transform → debug with the mouse, deploy, inject, see the debug message', async (ed) => {
  const inject = await ed.dragFromPalette('inject', 160, 160);
  const transform = await ed.dragFromPalette('transform', 400, 160);
  const debug = await ed.dragFromPalette('debug', 640, 160);
  await ed.shot('three nodes dropped');

  await ed.wire(inject, 0, transform);
  await ed.wire(transform, 0, debug);
  await ed.shot('wired');

  await ed.edit(inject);
  await ed.setField('payloadType', 'number');
  await ed.setField('payload', '21');
  await ed.formDone();
  await ed.formClosed();

  await ed.edit(transform);
  await ed.setField('expression', 'payload * 2');
  await ed.shot('transform form');
  await ed.formDone();
  await ed.formClosed();

  await ed.$('#deploy.changed').waitFor({ state: 'attached' });
  await ed.deploy();
  await ed.shot('deployed');

  await ed.inject(inject);
  const msg = ed.debugMsgs(debug).filter({ hasText: '42' });
  await msg.first().waitFor();
  await ed.shot('debug message');

  const { flows } = await getFlows();
  const byId = new Map(flows.map((n) => [n.id, n]));
  assert.equal(byId.get(inject)?.type, 'inject');
  assert.equal(byId.get(transform)?.type, 'transform');
  assert.equal(byId.get(debug)?.type, 'debug');
  assert.deepEqual(byId.get(inject).wires, [[transform]]);
  assert.deepEqual(byId.get(transform).wires, [[debug]]);
  assert.equal(byId.get(transform).expression, 'payload * 2');
  assert.equal(byId.get(inject).payloadType, 'number');
  assert.equal(String(byId.get(inject).payload), '21');
  assert.equal(byId.get(inject).z, byId.get(debug).z, 'the nodes are on one tab');
});
