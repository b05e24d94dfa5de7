// @ts-check
// A server with authentication: the editor shows the #login form and no
// flow until a login is accepted; a wrong token is refused; the right one
// opens the editor over the session cookie, and the cookie is HttpOnly.
import assert from 'node:assert/strict';
import { editorTest, env } from './lib/editor.js';

editorTest('a server with authentication asks for a login first', async (ed) => {
  assert.ok(env.authURL && env.authToken, 'TBFLOW_AUTH_URL and TBFLOW_AUTH_TOKEN are not set');
  // Without a credential the API is closed.
  assert.equal((await fetch(env.authURL + '/api/flows')).status, 401);

  await ed.page.goto(env.authURL + '/');
  const form = ed.$('#login');
  await form.waitFor({ state: 'visible' });
  assert.equal(await ed.$('body[data-conn="open"]').count(), 0, 'the editor connected without a login');
  assert.equal(await ed.$('svg#canvas g.node').count(), 0, 'the editor shows a flow without a login');
  await ed.shot('login form');

  await form.locator('[name=token]').fill('not-the-token');
  await ed.$('#login-ok').click();
  await form.locator('.login-error').filter({ hasText: /not accepted/i }).waitFor();
  assert.equal(await ed.$('body[data-conn="open"]').count(), 0);
  await ed.shot('refused');

  await form.locator('[name=token]').fill(env.authToken);
  await ed.$('#login-ok').click();
  await form.waitFor({ state: 'hidden' });
  await ed.waitOpen();
  await ed.shot('signed in');

  const cookies = await ed.ctx.cookies(env.authURL);
  assert.ok(cookies.length > 0, 'no session cookie');
  for (const c of cookies) {
    assert.ok(c.httpOnly, `cookie ${c.name} is readable by scripts`);
    assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is not SameSite=Strict`);
    assert.ok(!c.value.includes(env.authToken), `cookie ${c.name} holds the token`);
  }
  assert.equal(await ed.page.evaluate(() => document.cookie), '', 'the page can read the session cookie');
  // The session survives a reload.
  await ed.reload();
  assert.equal(await form.isVisible(), false);
}, {
  open: false,
  // The refused login is a 401 answer, which the browser logs as an error.
  allow: [/Failed to load resource: the server responded with a status of 401 .*\/api\/login/],
});
