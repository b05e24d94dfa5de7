// @ts-check
// Export everything, delete everything, import the export through the
// import dialog: the nodes, their settings and their wires come back, and
// deploy as before.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { editorTest, emptyFlow, flowNodes, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'start', x: 140, y: 120, payloadType: 'number', payload: '5', wires: [['tf1']] },
  { id: 'tf1', type: 'transform', z: 'tab1', name: 'square', x: 360, y: 120, expression: 'payload * payload', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: 'result', x: 580, y: 120, wires: [] },
];

/** The nodes' types, names, settings and wires by name, independent of ids. @param {any[]} flows */
function shape(flows) {
  const nodes = flowNodes(flows);
  const name = new Map(nodes.map((n) => [n.id, n.name]));
  return nodes
    .map((n) => ({
      type: n.type,
      name: n.name,
      expression: n.expression,
      payload: n.payload,
      wires: (n.wires ?? []).map((/** @type {string[]} */ p) => p.map((id) => name.get(id)).sort()),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

editorTest('export all, delete all, import the export: nodes and wires are back', async (ed) => {
  const text = await ed.exportJSON('all');
  const exported = JSON.parse(text);
  assert.ok(Array.isArray(exported), 'the export is not a flow array');
  assert.deepEqual(shape(exported), shape(flow));

  await ed.focusCanvas();
  await ed.press('Control+A');
  await ed.press('Delete');
  await ed.$('svg#canvas g.node').first().waitFor({ state: 'detached' });
  assert.equal(await ed.$('path.wire').count(), 0, 'wires left after deleting every node');
  await ed.shot('everything deleted');

  await ed.importJSON(text);
  await ed.$('svg#canvas g.node').nth(2).waitFor({ state: 'attached' });
  // An import may arrive attached to the mouse, as in Node-RED: drop it.
  await ed.focusCanvas();
  assert.equal(await ed.$('svg#canvas g.node').count(), 3);
  assert.equal(await ed.$('path.wire').count(), 2);
  await ed.shot('imported');

  await ed.deploy();
  const { flows } = await getFlows();
  assert.deepEqual(shape(flows), shape(flow));
  const inject = flowNodes(flows).find((n) => n.type === 'inject');
  const debug = flowNodes(flows).find((n) => n.type === 'debug');
  await ed.inject(inject.id);
  await ed.debugMsgs(debug.id).filter({ hasText: '25' }).first().waitFor();
}, { flow });

editorTest('export downloads a file; importing that file brings the flow back', async (ed) => {
  await ed.$('#export').click();
  const dlg = ed.$('#export-dialog');
  await dlg.waitFor({ state: 'visible' });
  await dlg.locator('select[name=scope]').selectOption('all');
  const shown = await dlg.locator('textarea').inputValue();
  const [download] = await Promise.all([ed.page.waitForEvent('download'), ed.$('#export-download').click()]);
  const file = await download.path();
  assert.ok(file, 'the download has no file');
  const text = await fs.readFile(file, 'utf8');
  assert.deepEqual(JSON.parse(text), JSON.parse(shown), 'the downloaded file differs from the dialog');
  assert.match(download.suggestedFilename(), /\.json$/);
  await ed.$('#export-close').click();
  await dlg.waitFor({ state: 'hidden' });

  await ed.focusCanvas();
  await ed.press('Control+A');
  await ed.press('Delete');
  await ed.$('svg#canvas g.node').first().waitFor({ state: 'detached' });

  await ed.$('#import').click();
  const imp = ed.$('#import-dialog');
  await imp.waitFor({ state: 'visible' });
  await imp.locator('input[type=file]').setInputFiles(file);
  await ed.$('#import-ok').click();
  await imp.waitFor({ state: 'hidden' });
  await ed.$('svg#canvas g.node').nth(2).waitFor({ state: 'attached' });
  await ed.focusCanvas();
  assert.equal(await ed.$('path.wire').count(), 2);
  await ed.deploy();
  assert.deepEqual(shape((await getFlows()).flows), shape(flow));
}, { flow });
