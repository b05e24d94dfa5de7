// @ts-check
// A config node that comes back through export and import is the node the
// flow already has (its secrets stay stored), not a copy without them; and
// a stored secret can be cleared from its form.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { editorTest, emptyFlow, env, getFlows, until } from './lib/editor.js';

const token = 'reimport-token-4f1d';

const flow = [
  ...emptyFlow(),
  // A port where nothing listens: the node only needs to hold the secret.
  { id: 'conn1', type: 'tb-connection', name: 'site', host: '127.0.0.1', port: 1, accessToken: token },
  { id: 'out1', type: 'tb-telemetry-out', z: 'tab1', name: 'telemetry', connection: 'conn1', x: 300, y: 120, wires: [] },
];

/** @param {any[]} flows */
const connections = (flows) => flows.filter((n) => n.type === 'tb-connection');

editorTest('export, delete, import: the config node is reused and keeps its secret', async (ed) => {
  const text = await ed.exportJSON('all');
  assert.ok(!text.includes(token), 'the export holds the secret');
  await ed.focusCanvas();
  await ed.press('Control+A');
  await ed.press('Delete');
  await ed.$('svg#canvas g.node').first().waitFor({ state: 'detached' });
  await ed.importJSON(text);
  await ed.$('svg#canvas g.node').first().waitFor({ state: 'attached' });
  await ed.focusCanvas();
  await ed.deploy();

  const { flows } = await getFlows();
  const conns = connections(flows);
  assert.equal(conns.length, 1, `the import added a second connection: ${JSON.stringify(conns)}`);
  assert.equal(conns[0].id, 'conn1');
  const out = flows.find((n) => n.type === 'tb-telemetry-out');
  assert.equal(out.connection, 'conn1', 'the imported node points at another connection');
  assert.ok((await fs.readFile(env.credFile, 'utf8')).includes(token), 'the stored secret is gone');
}, { flow });

editorTest('a stored secret is cleared from its form', async (ed) => {
  const [out] = await ed.nodeIds('tb-telemetry-out');
  await ed.edit(out);
  await ed.$('#node-form .ref-edit').first().click();
  const clear = ed.$('#node-form .secret-clear');
  await clear.waitFor({ state: 'visible' });
  await clear.click();
  await ed.shot('secret cleared');
  await ed.formDone();
  await ed.field('connection').waitFor({ state: 'visible' });
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await until(async () => !(await fs.readFile(env.credFile, 'utf8').catch(() => '')).includes(token), 'the secret to leave the credentials file');
  const { flows } = await getFlows();
  assert.equal(connections(flows)[0].accessToken ?? '', '', 'the connection still has a token');
}, { flow });
