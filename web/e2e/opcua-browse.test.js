// @ts-check
// The Browse… button of an opcua-in form lists a real OPC UA server's
// address space (the node-opcua test server of peers/opcua) and adds the
// variable the user clicks as a row of the items table.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { editorTest, emptyFlow, env, getFlows } from './lib/editor.js';

const script = fileURLToPath(new URL('../../peers/opcua/server.js', import.meta.url));
/** @type {import('node:child_process').ChildProcess | undefined} */
let server;
let endpoint = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = /** @type {net.AddressInfo} */ (s.address()).port;
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  const port = await freePort();
  const pki = fs.mkdtempSync(path.join(env.tmp, 'opcua-pki-'));
  server = spawn(process.execPath, [script, '--port', String(port), '--pki', pki], { stdio: ['ignore', 'pipe', 'pipe'] });
  let errText = '';
  server.stderr?.on('data', (d) => (errText += d));
  endpoint = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-opcua server not ready:\n${errText}`)), 60_000);
    let out = '';
    server?.stdout?.on('data', (d) => {
      out += d;
      const m = /ready (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server?.on('exit', (code) => reject(new Error(`node-opcua server exited ${code}:\n${errText}`)));
  });
});

after(() => {
  server?.kill();
});

editorTest('Browse… picks an OPC UA variable into the items table', async (ed) => {
  await ed.edit('in1');
  await ed.$('#node-form button.node-action[data-action="browse"]').click();
  const list = ed.$('#node-form .node-action-list');
  await list.locator('button', { hasText: 'Test' }).click();
  await list.locator('button', { hasText: 'Scalars' }).click();
  await list.locator('button[data-node-id="ns=2;s=Double"]').click();
  const rows = ed.$('#node-form .table-row');
  await rows.nth(1).waitFor();
  assert.equal(await rows.nth(1).locator('[name="nodeId"]').inputValue(), 'ns=2;s=Double');
  assert.equal(await rows.nth(1).locator('[name="key"]').inputValue(), 'Double');
  await ed.shot('picked');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  const node = (await getFlows()).flows.find((/** @type {any} */ n) => n.id === 'in1');
  assert.deepEqual(node.items, [{ key: 'counter', nodeId: 'ns=2;s=Counter' }, { key: 'Double', nodeId: 'ns=2;s=Double' }]);
}, {
  timeout: 90_000,
  get flow() {
    return [
      ...emptyFlow(),
      { id: 'ua', type: 'opcua-connection', endpoint },
      { id: 'in1', type: 'opcua-in', z: 'tab1', name: 'plc', x: 160, y: 120, connection: 'ua', items: [{ key: 'counter', nodeId: 'ns=2;s=Counter' }], wires: [] },
    ];
  },
});
