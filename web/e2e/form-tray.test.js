// @ts-check
// The property form of the demo's modbus-in at 1440×900: every column of
// the register table is readable, cells a row does not set are empty (their
// default shown as such) rather than a made-up 0; the tray is resized by
// its edge and remembered; in a narrow tray the table scrolls inside with
// its key column fixed.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { editorTest, until } from './lib/editor.js';

const demo = JSON.parse(await fs.readFile(new URL('../../flows/demo.json', import.meta.url), 'utf8'));

editorTest('the demo\'s modbus-in: every register column readable, a resizable tray, a table that scrolls with its key fixed', async (ed) => {
  await ed.page.setViewportSize({ width: 1440, height: 900 });
  await ed.reload();
  await ed.edit('meter');
  const form = await ed.$('#node-form').boundingBox();
  assert.ok(form);
  const table = ed.$('#node-form table.table-edit[data-field="registers"]');
  await table.waitFor();
  const heads = table.locator('thead th[data-col]');
  const n = await heads.count();
  assert.ok(n >= 8, `only ${n} columns`);
  const scroll = table.locator('xpath=ancestor::*[contains(concat(" ", normalize-space(@class), " "), " table-scroll ")][1]');
  const scroller = await scroll.evaluate((e) => e.getBoundingClientRect().toJSON());
  let fitting = 0;
  for (let i = 0; i < n; i++) {
    const th = heads.nth(i);
    const name = await th.getAttribute('data-col');
    // The map has more columns than any tray shows at once: those past the
    // edge are brought into view by scrolling the table, as a user does,
    // and must then be whole, beside the fixed key column.
    const unscrolled = await th.boundingBox();
    if (unscrolled && unscrolled.x + unscrolled.width <= scroller.right + 0.5) fitting++;
    const keyRight = await th.evaluate((e) => {
      const sc = e.closest('.table-scroll');
      const kr = () => e.closest('table').querySelector('thead th[data-col="key"]').getBoundingClientRect().right;
      const r = e.getBoundingClientRect(), sr = sc.getBoundingClientRect();
      if (r.right > sr.right) sc.scrollLeft += r.right - sr.right;
      else if (e.dataset.col !== 'key' && r.left < kr()) sc.scrollLeft -= kr() - r.left;
      return kr();
    });
    const b = await th.boundingBox();
    assert.ok(b, `column ${name} has no box`);
    assert.ok(b.x >= form.x && b.x + b.width <= form.x + form.width + 0.5, `column ${name} (${b.x}–${b.x + b.width}) is outside the form (${form.x}–${form.x + form.width})`);
    assert.ok(b.x + b.width <= scroller.right + 0.5 && b.x + b.width <= 1440, `column ${name} is clipped`);
    if (name !== 'key') assert.ok(b.x >= keyRight - 1.5, `column ${name} (from ${b.x}) is under the fixed key column (to ${keyRight})`);
    const text = (await th.textContent())?.trim() ?? '';
    assert.ok(text.length > 0, `column ${name} has no heading`);
    // The cell of the first row under it is visible too.
    const cell = table.locator(`tbody tr:first-child td[data-col="${name}"]`);
    const cb = await cell.boundingBox();
    assert.ok(cb && cb.x + cb.width <= form.x + form.width + 0.5, `the cell of ${name} is clipped`);
  }
  assert.ok(fitting >= 8, `only ${fitting} columns are in view before scrolling at 1440×900`);
  await scroll.evaluate((e) => { e.scrollLeft = 0; });
  await ed.shot('modbus-in form at 1440x900');
  // The voltage row sets no length or bit: those cells are empty, not 0.
  const row = table.locator('tbody tr').first();
  assert.equal(await row.locator('input[data-col="key"]').inputValue(), 'voltage');
  for (const col of ['length', 'bit', 'scale', 'offset']) {
    const input = row.locator(`input[data-col="${col}"]`);
    if (!(await input.count())) continue;
    assert.equal(await input.inputValue(), '', `${col} shows a value the row does not set`);
    assert.match((await input.getAttribute('placeholder')) ?? '', /^default /, `${col} does not show its default as one`);
  }

  // The tray is resized by its left edge…
  const handle = await ed.$('#form-resize').boundingBox();
  assert.ok(handle);
  const m = ed.page.mouse;
  await m.move(handle.x + handle.width / 2, handle.y + 200);
  await m.down();
  await m.move(handle.x + 420, handle.y + 210, { steps: 8 });
  await m.up();
  const narrow = await ed.$('#node-form').boundingBox();
  assert.ok(narrow && Math.abs(narrow.width - (form.width - 420 + handle.width / 2)) < 30, `the tray is ${narrow?.width} px wide after the drag`);
  // …the table then scrolls inside it with the key column fixed.
  const sc = ed.$('#node-form .kind-table .table-scroll');
  assert.ok(await sc.evaluate((e) => e.scrollWidth > e.clientWidth + 20), 'the narrow table does not scroll');
  await sc.evaluate((e) => {
    e.scrollLeft = e.scrollWidth;
  });
  const key = await row.locator('td[data-col="key"]').boundingBox();
  const sbox = await sc.boundingBox();
  assert.ok(key && sbox && key.x >= sbox.x - 0.5 && key.x < sbox.x + 60, 'the key column scrolled away');
  const hit = await row.locator('td[data-col="key"] input').evaluate((el) => {
    const r = el.getBoundingClientRect();
    return document.elementFromPoint(r.left + 8, r.top + r.height / 2) === el;
  });
  assert.ok(hit, 'the key cell is covered by the scrolled cells');
  await ed.shot('narrow tray, scrolled table');
  await ed.$('#form-cancel').click();
  await ed.formClosed();

  // The width is remembered.
  await ed.reload();
  await ed.edit('meter');
  await until(async () => Math.abs(((await ed.$('#node-form').boundingBox())?.width ?? 0) - (narrow?.width ?? 0)) < 2, 'the tray to keep its width');
}, { flow: demo, timeout: 60_000 });
