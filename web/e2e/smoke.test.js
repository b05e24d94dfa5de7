// @ts-check
// The editor loads: its title, an open WebSocket, a filled palette, the
// security headers of docs/editor-api.md, and not one console error.
import assert from 'node:assert/strict';
import { editorTest, env } from './lib/editor.js';

editorTest('the editor loads with an open connection and no console errors', async (ed) => {
  assert.match(await ed.page.title(), /tbflow/i);
  await ed.$('body[data-conn="open"]').waitFor({ state: 'attached' });
  await ed.$('svg#canvas').waitFor();
  await ed.$('#palette .palette-node[data-type="inject"]').waitFor();
  await ed.$('#deploy').waitFor();
  const res = await fetch(env.url + '/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('access-control-allow-origin'), null);
  await ed.shot('loaded');
});
