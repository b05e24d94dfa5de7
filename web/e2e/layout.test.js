// @ts-check
// At 1024×700 the canvas keeps a usable size; the palette and the sidebar
// are resized by dragging their edges and collapsed by their buttons, and
// the editor remembers both.
import assert from 'node:assert/strict';
import { editorTest, until } from './lib/editor.js';

/** @param {import('./lib/editor.js').Editor} ed */
async function widths(ed) {
  const box = async (/** @type {string} */ sel) => (await ed.$(sel).boundingBox())?.width ?? 0;
  return { palette: await box('#palette'), sidebar: await box('#sidebar'), canvas: await box('#canvas-wrap') };
}

editorTest('a usable canvas at 1024x700; resizable, collapsible, remembered panels', async (ed) => {
  await ed.page.setViewportSize({ width: 1024, height: 700 });
  await ed.reload();
  const small = await widths(ed);
  const height = (await ed.$('#canvas-wrap').boundingBox())?.height ?? 0;
  assert.ok(small.canvas >= 560, `the canvas is only ${small.canvas} px wide at 1024x700`);
  assert.ok(height >= 560, `the canvas is only ${height} px high at 1024x700`);
  assert.ok(small.palette >= 120 && small.sidebar >= 220, `the panels are too narrow to use: ${JSON.stringify(small)}`);
  await ed.shot('1024x700');

  // Drag the sidebar's edge to the left: the sidebar widens.
  const m = ed.page.mouse;
  let s = await ed.$('#sidebar-splitter').boundingBox();
  assert.ok(s);
  await m.move(s.x + s.width / 2, s.y + 300);
  await m.down();
  await m.move(s.x - 80, s.y + 300, { steps: 6 });
  await m.up();
  await until(async () => (await widths(ed)).sidebar > small.sidebar + 60, 'the sidebar to widen');
  // Drag the palette's edge to the right: the palette widens.
  s = await ed.$('#palette-splitter').boundingBox();
  assert.ok(s);
  await m.move(s.x + s.width / 2, s.y + 300);
  await m.down();
  await m.move(s.x + 60, s.y + 300, { steps: 6 });
  await m.up();
  await until(async () => (await widths(ed)).palette > small.palette + 40, 'the palette to widen');
  const resized = await widths(ed);

  // Remembered after a reload.
  await ed.reload();
  const again = await widths(ed);
  assert.ok(Math.abs(again.sidebar - resized.sidebar) < 2 && Math.abs(again.palette - resized.palette) < 2, `not remembered: ${JSON.stringify(resized)} then ${JSON.stringify(again)}`);

  // Collapsing both gives the canvas the whole width; the buttons bring them back.
  await ed.$('#sidebar-toggle').click();
  await ed.$('#palette-toggle').click();
  await until(async () => (await widths(ed)).canvas >= 1000, 'the canvas to take the width of the collapsed panels');
  await ed.shot('panels collapsed');
  await ed.reload();
  assert.ok((await widths(ed)).canvas >= 1000, 'collapsed panels are not remembered');
  await ed.$('#sidebar-toggle').click();
  await ed.$('#palette-toggle').click();
  await until(async () => {
    const w = await widths(ed);
    return Math.abs(w.sidebar - resized.sidebar) < 2 && Math.abs(w.palette - resized.palette) < 2;
  }, 'the panels to come back at their width');
  // Opening a sidebar panel from a collapsed sidebar shows it.
  await ed.$('#sidebar-toggle').click();
  await until(async () => (await widths(ed)).sidebar < 2, 'the sidebar to collapse');
});
