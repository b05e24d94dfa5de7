// @ts-check
// Human labels: every field of a core and a ThingsBoard node shows a label,
// not its key; output ports are named on hover and in Help (gw-device's
// three); the palette and Help name each node type the same way.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, api } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'gw', type: 'tb-connection', name: 'gateway', host: '127.0.0.1', port: 1, mode: 'gateway' },
  { id: 'dev', type: 'gw-device', z: 'tab1', name: 'meter', connection: 'gw', device: 'Meter A', x: 300, y: 160, wires: [[], [], []] },
  { id: 'in', type: 'inject', z: 'tab1', name: 'in', x: 120, y: 160, wires: [['dev']] },
];

editorTest('labels for fields and ports, one name per node type', async (ed) => {
  // Every field of these forms has a label that is not its raw key.
  const { body: types } = await api('GET', '/api/nodes');
  const list = Array.isArray(types) ? types : types.types;
  for (const id of ['in', 'dev']) {
    await ed.edit(id);
    const labels = await ed.$('#node-form .form-row[data-field] > .form-label, #node-form .form-row[data-field] .form-check .form-label').evaluateAll((els) =>
      els.map((e) => ({ field: e.closest('.form-row')?.getAttribute('data-field'), text: (e.firstChild?.textContent ?? '').trim() })),
    );
    assert.ok(labels.length >= 4, `${id}: only ${labels.length} labelled fields`);
    for (const l of labels) {
      if (l.field === 'name') continue;
      assert.notEqual(l.text, l.field, `${id}: the field ${l.field} is labelled with its key`);
      assert.match(l.text, /^[A-Z]/, `${id}: the label "${l.text}" of ${l.field} does not read as a label`);
    }
    if (id === 'in') assert.equal(labels.find((l) => l.field === 'payloadType')?.text, 'Payload type');
    await ed.shot(`${id} form`);
    await ed.$('#form-cancel').click();
    await ed.formClosed();
  }
  for (const t of list.filter((/** @type {any} */ t) => ['common', 'function', 'thingsboard'].includes(t.category))) {
    for (const f of t.fields) assert.ok(f.label, `${t.type}.${f.name} has no label in its spec`);
    if (!t.configNode && !t.outputsField && t.outputs > 0) assert.equal(t.outputLabels?.length, t.outputs, `${t.type} has unnamed outputs`);
  }

  // gw-device's three outputs are named on hover…
  const want = ['through (msg.device set)', 'rpc requests', 'shared-attribute updates'];
  for (let i = 0; i < 3; i++) {
    await ed.node('dev').locator(`.port.out[data-port="${i}"]`).hover();
    await ed.$('#port-tip').waitFor({ state: 'visible' });
    assert.equal(await ed.$('#port-tip').textContent(), want[i]);
  }
  await ed.shot('port label');
  // …and in Help.
  await ed.select('dev');
  await ed.$('#sidebar-tabs [data-panel="help"]').click();
  assert.deepEqual(await ed.$('#help .help-outputs li').allTextContents(), want);

  // The palette and Help call each type by one name.
  for (const type of ['tb-rpc-in', 'gw-device', 'rate-limit', 'inject']) {
    const entry = ed.$(`#palette .palette-node[data-type="${type}"]`);
    const label = (await entry.locator('.palette-label').textContent())?.trim();
    await entry.hover();
    await ed.$('#help .help-title').filter({ hasText: label }).waitFor();
    const sub = (await ed.$('#help .help-sub').textContent()) ?? '';
    assert.ok(!sub.includes(type) || type === label, `Help names ${type} "${type}" while the palette says "${label}"`);
    assert.equal(label, type, `the palette calls ${type} "${label}" while Help, the docs and flow files call it ${type}`);
  }
}, { flow });
