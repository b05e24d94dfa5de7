// @ts-check
// A Node-RED export pasted into the import dialog is recognised and
// converted by the server: the report shows what was kept and what was
// not, the group is drawn as a frame, the flow deploys and runs, and the
// export dialog's "for Node-RED" switch writes Node-RED's names back.
import assert from 'node:assert/strict';
import { editorTest, flowNodes, getFlows, until } from './lib/editor.js';

const nodeRED = [
  { id: 'nr-tab', type: 'tab', label: 'From Node-RED', disabled: false, info: '' },
  { id: 'nr-grp', type: 'group', z: 'nr-tab', name: 'double it', style: { label: true }, nodes: ['nr-fn', 'nr-ch'], x: 214, y: 59, w: 332, h: 82 },
  { id: 'nr-in', type: 'inject', z: 'nr-tab', name: 'start', props: [{ p: 'payload' }, { p: 'topic', vt: 'str' }], repeat: '', crontab: '', once: false, onceDelay: 0.1, topic: '', payload: '21', payloadType: 'num', x: 120, y: 100, wires: [['nr-fn']] },
  { id: 'nr-fn', type: 'function', z: 'nr-tab', g: 'nr-grp', name: 'double', func: 'msg.payload = msg.payload * 2;\nreturn msg;', outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 100, wires: [['nr-ch']] },
  { id: 'nr-ch', type: 'change', z: 'nr-tab', g: 'nr-grp', name: 'label', rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'doubled', tot: 'str' }], action: '', property: '', from: '', to: '', reg: false, x: 460, y: 100, wires: [['nr-lo']] },
  { id: 'nr-lo', type: 'link out', z: 'nr-tab', name: '', mode: 'link', links: ['nr-li'], x: 580, y: 100, wires: [] },
  { id: 'nr-li', type: 'link in', z: 'nr-tab', name: '', links: ['nr-lo'], x: 120, y: 200, wires: [['nr-dbg']] },
  { id: 'nr-dbg', type: 'debug', z: 'nr-tab', name: 'result', active: true, tosidebar: true, console: false, tostatus: false, complete: 'false', statusVal: '', statusType: 'auto', x: 300, y: 200, wires: [] },
  { id: 'nr-exec', type: 'exec', z: 'nr-tab', command: 'uptime', addpay: '', append: '', useSpawn: 'false', timer: '', winHide: false, oldrc: false, name: '', x: 300, y: 280, wires: [[], [], []] },
];

editorTest('a Node-RED export imports converted, with a report, and deploys', async (ed) => {
  await ed.importJSON(JSON.stringify(nodeRED));
  const report = ed.$('#nodered-report');
  await report.waitFor({ state: 'visible' });
  const text = await report.locator('.nodered-report-lines').innerText();
  assert.match(text, /imported 8 object/);
  assert.match(text, /not converted: 1 "exec" node\(s\) \(runs operating-system commands/);
  await ed.shot('conversion report');
  await ed.$('#nodered-report-ok').click();
  await report.waitFor({ state: 'hidden' });

  // The group is a frame behind its members; the link nodes are nodes.
  await ed.$('svg#canvas g.node.group').waitFor({ state: 'attached' });
  assert.equal(await ed.$('svg#canvas g.node.group text.group-label').textContent(), 'double it');
  assert.equal(await ed.$('svg#canvas g.node.unknown').count(), 0, 'an unknown node was imported');
  await ed.shot('imported');

  await ed.deploy();
  const { flows } = await getFlows();
  const nodes = flowNodes(flows);
  const byType = (/** @type {string} */ t) => nodes.filter((n) => n.type === t);
  assert.deepEqual(byType('link-out')[0].links, [byType('link-in')[0].id], 'the link lost its target');
  assert.equal(byType('group')[0].nodes.length, 2, 'the group lost its members');
  assert.equal(byType('exec').length, 0);
  await ed.inject(byType('inject')[0].id);
  await ed.debugMsgs(byType('debug')[0].id).filter({ hasText: '42' }).first().waitFor();

  // Export for Node-RED: Node-RED's type names and values.
  await ed.$('#export').click();
  const dlg = ed.$('#export-dialog');
  await dlg.waitFor({ state: 'visible' });
  await dlg.locator('select[name=scope]').selectOption('all');
  await dlg.locator('#export-nodered').check();
  let exported = [];
  await until(async () => {
    try {
      exported = JSON.parse(await dlg.locator('textarea').inputValue());
    } catch {
      return false;
    }
    return exported.some((n) => n.type === 'link out');
  }, 'the export dialog to show the Node-RED flow');
  const inj = exported.find((n) => n.type === 'inject');
  assert.equal(inj.payloadType, 'num');
  assert.ok(exported.some((n) => n.type === 'link in'));
  await ed.$('#export-close').click();
  await dlg.waitFor({ state: 'hidden' });

  // Importing the same export again gives new ids; links and the group follow them.
  await ed.importJSON(JSON.stringify(nodeRED));
  await ed.$('#nodered-report-ok').click();
  await ed.deploy();
  const again = flowNodes((await getFlows()).flows);
  const outs = again.filter((n) => n.type === 'link-out');
  const ins = new Set(again.filter((n) => n.type === 'link-in').map((n) => n.id));
  assert.equal(outs.length, 2);
  for (const o of outs) assert.ok(ins.has(o.links[0]), `link ${o.id} points to ${o.links[0]}, not a link in`);
  const ids = new Set(again.map((n) => n.id));
  for (const g of again.filter((n) => n.type === 'group')) for (const m of g.nodes) assert.ok(ids.has(m), `group member ${m} is missing`);
  const targets = outs.map((o) => o.links[0]);
  assert.notEqual(targets[0], targets[1], 'both imports link to the same link in');
});
