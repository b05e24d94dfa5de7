// @ts-check
// A secret typed into a config node's form reaches the server's
// credentials file and nothing else: not GET /api/flows, not a WebSocket
// frame sent to the page, not the export dialog, not the page after a
// reload, not the flow file.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { editorTest, env, getFlows } from './lib/editor.js';

editorTest('a secret typed in a config node form stays on the server', async (ed) => {
  const secret = 'tok-' + crypto.randomBytes(9).toString('hex');
  const out = await ed.dragFromPalette('tb-telemetry-out', 300, 160);
  await ed.edit(out);
  await ed.setField('device', 'Meter A');

  // "Add new…" in the config-ref field stacks the tb-connection's form.
  const ref = ed.field('connection');
  const addNew = await ref.locator('option').evaluateAll((os) =>
    os.map((o) => /** @type {HTMLOptionElement} */ (o)).find((o) => /^add new/i.test(o.textContent ?? ''))?.value);
  assert.ok(addNew !== undefined, 'the connection field has no "add new" option');
  await ref.selectOption(addNew);
  await ed.$('#node-form [name="accessToken"]').waitFor({ state: 'visible' });
  await ed.setField('host', '127.0.0.1');
  // A port where nothing listens: the node only needs to hold the secret.
  await ed.setField('port', '1');
  await ed.setField('accessToken', secret);
  await ed.shot('config node form');
  await ed.formDone();
  await ed.field('device').waitFor({ state: 'visible' });
  await ed.formDone();
  await ed.formClosed();
  assert.ok(!(await ed.exportJSON('all')).includes(secret), 'the export before the deploy holds the secret');
  await ed.deploy();
  await ed.shot('deployed');

  // The server kept it, in the credentials file only.
  const cred = await fs.readFile(env.credFile, 'utf8');
  assert.ok(cred.includes(secret), 'the credentials file does not hold the secret');
  assert.ok(!(await fs.readFile(env.flowsFile, 'utf8')).includes(secret), 'the flow file holds the secret');

  // REST shows a placeholder.
  const { flows, text } = await getFlows();
  assert.ok(!text.includes(secret), 'GET /api/flows holds the secret');
  const conn = flows.find((n) => n.type === 'tb-connection');
  assert.ok(conn, 'no tb-connection deployed');
  assert.equal(conn.accessToken, '__SECRET__');
  assert.equal(flows.find((n) => n.id === out)?.connection, conn.id);

  // Export, before and after a reload.
  assert.ok(!(await ed.exportJSON('all')).includes(secret), 'the export holds the secret');
  await ed.reload();
  assert.ok(!(await ed.exportJSON('all')).includes(secret), 'the export after a reload holds the secret');
  assert.ok(!(await ed.page.content()).includes(secret), 'the page holds the secret after a reload');

  // The config node's form, opened from the node's form, has an empty
  // secret field (the placeholder is no value to show).
  await ed.edit(out);
  await ed.field('connection').locator('xpath=..').getByRole('button', { name: /edit/i }).click();
  const token = ed.field('accessToken');
  await token.waitFor({ state: 'visible' });
  assert.equal(await token.inputValue(), '', 'the secret field shows a value after a reload');
  const values = await ed.page.locator('input, textarea, select').evaluateAll((els) =>
    els.map((e) => /** @type {HTMLInputElement} */ (e).value));
  assert.ok(!values.some((v) => v.includes(secret)), 'a form field holds the secret after a reload');
  await ed.shot('config form after reload');
  await ed.$('#form-cancel').click();
  await ed.field('device').waitFor({ state: 'visible' });

  // Deploying other changes keeps the secret the server holds.
  await ed.setField('device', 'Meter B');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  assert.ok((await fs.readFile(env.credFile, 'utf8')).includes(secret), 'a later deploy lost the secret');
  const later = await getFlows();
  assert.equal(later.flows.find((n) => n.id === out)?.device, 'Meter B');
  assert.ok(!later.text.includes(secret));

  assert.ok(ed.framesIn.length > 0, 'the page received no WebSocket frames');
  const leaked = ed.framesIn.filter((f) => f.includes(secret));
  assert.deepEqual(leaked, [], 'WebSocket frames to the page hold the secret');
  assert.ok(ed.framesOut.some((f) => f.includes(secret)), 'the deploy did not send the secret (was it typed?)');
});
