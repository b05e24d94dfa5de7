// @ts-check
// The debug sidebar follows the newest message, also after the user has
// looked at Help: the README's "build your own" shows its 42 in view
// without ticking "this tab", while another tab keeps sending. Scrolled up,
// the sidebar stays put and a "N new" marker jumps back down.
import assert from 'node:assert/strict';
import { editorTest, emptyFlow, deployFlows, until } from './lib/editor.js';

const noise = (interval) => [
  ...emptyFlow(),
  { id: 'tab2', type: 'tab', label: 'Noise' },
  { id: 'tick', type: 'inject', z: 'tab2', name: 'tick', x: 140, y: 100, payloadType: 'json', payload: '{"site": "north", "celsius": 21.5}', interval, wires: [['noise']] },
  { id: 'noise', type: 'debug', z: 'tab2', name: 'noise', x: 360, y: 100, wires: [] },
];

/** Whether the newest message of node id is inside the debug list's visible box. */
function inView(ed, id, text) {
  return ed.page.evaluate(
    ([nid, t]) => {
      const list = document.querySelector('#debug-list');
      const msgs = [...document.querySelectorAll(`#debug-list .debug-msg[data-node="${nid}"]`)].filter((m) => m.textContent?.includes(t));
      const m = msgs[msgs.length - 1];
      if (!list || !m) return false;
      const a = list.getBoundingClientRect();
      const b = m.getBoundingClientRect();
      return b.height > 0 && b.top >= a.top - 1 && b.bottom <= a.bottom + 1;
    },
    [id, text],
  );
}

editorTest('after visiting Help, the user\'s own 42 shows up in view without ticking "this tab"', async (ed) => {
  // Another tab fills the sidebar well past its height.
  await ed.$('#debug-list .debug-msg:nth-child(30)').waitFor({ state: 'attached', timeout: 20_000 });
  // It goes on, more slowly (a deploy behind the editor's back; the editor reloads it).
  await deployFlows(noise('3s'));
  await ed.$('#sidebar-tabs [data-panel="help"]').click();
  await ed.$('#help').waitFor({ state: 'visible' });
  // The user reads Help while another message comes in.
  await ed.$('#sidebar-tabs [data-panel="debug"][data-badge]').waitFor();
  await ed.$('#sidebar-tabs [data-panel="config"]').click();
  await ed.$('#sidebar-tabs [data-panel="debug"]').click();
  await ed.$('#debug-list').waitFor({ state: 'visible' });
  assert.equal(await ed.$('#debug-tab-only').isChecked(), false);

  const inject = await ed.dragFromPalette('inject', 160, 160);
  const transform = await ed.dragFromPalette('transform', 400, 160);
  const debug = await ed.dragFromPalette('debug', 640, 160);
  await ed.wire(inject, 0, transform);
  await ed.wire(transform, 0, debug);
  await ed.edit(inject);
  await ed.setField('payloadType', 'number');
  await ed.setField('payload', '21');
  await ed.formDone();
  await ed.formClosed();
  await ed.edit(transform);
  await ed.setField('expression', 'payload * 2');
  await ed.formDone();
  await ed.formClosed();
  await ed.deploy();
  await ed.inject(inject);
  await ed.debugMsgs(debug).filter({ hasText: '42' }).first().waitFor({ state: 'attached' });
  await until(() => inView(ed, debug, '42'), 'the 42 to be in view in the debug sidebar', 3000);
  await ed.shot('42 in view');

  // Scrolled up, the list stays put; the marker counts what came since and jumps back.
  await ed.$('#debug-list').evaluate((l) => {
    l.scrollTop = 0;
  });
  await ed.page.waitForTimeout(200);
  await ed.inject(inject);
  await ed.$('#debug-new').waitFor({ state: 'visible' });
  assert.match((await ed.$('#debug-new').textContent()) ?? '', /^\d+ new/);
  assert.equal(await inView(ed, debug, '42'), false, 'the list followed although the user had scrolled up');
  assert.equal(await ed.$('#debug-list').evaluate((l) => l.scrollTop), 0, 'the list moved although the user had scrolled up');
  await ed.shot('n new marker');
  await ed.$('#debug-new').click();
  await until(() => inView(ed, debug, '42'), 'the marker to jump to the newest message', 3000);
  assert.equal(await ed.$('#debug-new').isVisible(), false);
}, { flow: noise('150ms'), timeout: 90_000 });
