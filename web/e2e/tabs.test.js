// @ts-check
// Tabs, the palette filter and the debug sidebar's filter, "this tab" and
// clear: nodes dropped on a new tab deploy onto that tab, each tab shows
// only its own nodes, and the sidebar filters and clears its messages.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: 'first', x: 140, y: 120, payloadType: 'string', payload: 'apple', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: 'fruit', x: 380, y: 120, wires: [] },
];

editorTest('a second tab, the palette filter, the debug filter, this tab only and clear', async (ed) => {
  await ed.$('#tabs .tab.active[data-id="tab1"]').waitFor();

  // The palette filter narrows the entries.
  await ed.$('#palette-filter').fill('transf');
  await ed.$('#palette .palette-node[data-type="inject"]').waitFor({ state: 'hidden' });
  assert.ok(await ed.$('#palette .palette-node[data-type="transform"]').isVisible());
  await ed.$('#palette-filter').fill('');
  await ed.$('#palette .palette-node[data-type="inject"]').waitFor({ state: 'visible' });

  // A new tab becomes the active one and starts empty.
  await ed.$('#tab-add').click();
  const tab2 = ed.$('#tabs .tab.active:not([data-id="tab1"])');
  await tab2.waitFor();
  const tabId = await tab2.getAttribute('data-id');
  assert.ok(tabId);
  assert.equal(await ed.$('svg#canvas g.node').count(), 0, 'the new tab shows the first tab\'s nodes');

  const inject = await ed.dragFromPalette('inject', 160, 140);
  const debug = await ed.dragFromPalette('debug', 420, 140);
  await ed.wire(inject, 0, debug);
  await ed.edit(inject);
  await ed.setField('payloadType', 'string');
  await ed.setField('payload', 'banana');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await ed.shot('second tab');

  const { flows } = await getFlows();
  assert.ok(flows.some((n) => n.id === tabId && n.type === 'tab'), 'the new tab was not deployed');
  assert.equal(flows.find((n) => n.id === inject)?.z, tabId);
  assert.equal(flows.find((n) => n.id === debug)?.z, tabId);
  assert.equal(flows.find((n) => n.id === 'in1')?.z, 'tab1');

  // Messages from both tabs; the filter shows only the matching ones.
  await ed.inject(inject);
  await ed.debugMsgs(debug).filter({ hasText: 'banana' }).first().waitFor();
  await ed.$(`#tabs .tab[data-id="tab1"]`).click();
  await ed.$('#tabs .tab.active[data-id="tab1"]').waitFor();
  await ed.node('in1').waitFor();
  assert.equal(await ed.node(inject).count(), 0, 'the first tab shows the second tab\'s nodes');
  await ed.inject('in1');
  await ed.debugMsgs('dbg1').filter({ hasText: 'apple' }).first().waitFor();
  await ed.$('#debug-filter').fill('apple');
  await ed.debugMsgs(debug).first().waitFor({ state: 'hidden' });
  assert.ok(await ed.debugMsgs('dbg1').first().isVisible());
  await ed.shot('debug filter');
  await ed.$('#debug-filter').fill('');
  await ed.debugMsgs(debug).first().waitFor({ state: 'visible' });

  // "This tab" shows only messages from nodes on the tab shown, and
  // follows a change of tab.
  await ed.$('#debug-tab-only').check();
  await ed.debugMsgs(debug).first().waitFor({ state: 'hidden' });
  assert.ok(await ed.debugMsgs('dbg1').first().isVisible());
  await ed.$(`#tabs .tab[data-id="${tabId}"]`).click();
  await ed.debugMsgs('dbg1').first().waitFor({ state: 'hidden' });
  assert.ok(await ed.debugMsgs(debug).first().isVisible());
  await ed.shot('debug this tab');
  await ed.$('#debug-tab-only').uncheck();
  await ed.debugMsgs('dbg1').first().waitFor({ state: 'visible' });

  await ed.$('#debug-clear').click();
  await ed.$('#debug .debug-msg').first().waitFor({ state: 'detached' });
}, { flow });
