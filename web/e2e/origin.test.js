// @ts-check
// A page from another origin (a plain page this script serves on another
// loopback port) cannot use the editor's API from the browser: its
// WebSocket is refused, its cross-origin deploy and inject change nothing,
// and it cannot read the flow (no CORS header).
import assert from 'node:assert/strict';
import http from 'node:http';
import { api, editorTest, emptyFlow, env, getFlows } from './lib/editor.js';

const flow = [
  ...emptyFlow(),
  { id: 'in1', type: 'inject', z: 'tab1', name: '', x: 140, y: 120, payloadType: 'number', payload: '1', wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', name: '', x: 380, y: 120, wires: [] },
];

/** Serves an empty page on 127.0.0.1:0 until closed. */
async function otherSite() {
  const srv = http.createServer((_, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end('<!doctype html><title>another site</title><p>another site</p>');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(undefined)));
  const addr = /** @type {import('node:net').AddressInfo} */ (srv.address());
  return {
    url: `http://127.0.0.1:${addr.port}`,
    close: () => {
      srv.closeAllConnections();
      return new Promise((r) => srv.close(() => r(undefined)));
    },
  };
}

editorTest('a page from another origin cannot use the API', async (ed) => {
  const site = await otherSite();
  try {
    await attack(ed, site.url);
  } finally {
    await site.close();
  }
}, {
  flow,
  open: false,
  // What the browser logs about the refused requests.
  allow: [
    /WebSocket connection to .* failed/,
    /blocked by CORS policy/,
    /Failed to load resource: net::ERR_FAILED/,
    /Failed to load resource: the server responded with a status of 403/,
  ],
});

/** @param {import('./lib/editor.js').Editor} ed @param {string} from */
async function attack(ed, from) {
  assert.notEqual(new URL(from).origin, new URL(env.url).origin);
  const before = await getFlows();
  // Counters live as long as the server (across deploys): compare.
  const outBefore = await injected();
  await ed.page.goto(from + '/');
  const target = env.url;
  const result = await ed.page.evaluate(async (target) => {
    const ws = await new Promise((resolve) => {
      const sock = new WebSocket(target.replace(/^http/, 'ws') + '/api/ws');
      sock.onopen = () => {
        sock.close();
        resolve('opened');
      };
      sock.onclose = () => resolve('refused');
    });
    let read;
    try {
      const r = await fetch(target + '/api/flows');
      read = 'read ' + (await r.text()).length + ' bytes';
    } catch {
      read = 'blocked';
    }
    // A "simple" request, as a hostile page would send it: no preflight.
    await fetch(target + '/api/flows?mode=full', { method: 'POST', mode: 'no-cors', body: '[]' }).catch(() => {});
    await fetch(target + '/api/inject/in1', { method: 'POST', mode: 'no-cors' }).catch(() => {});
    return { ws, read };
  }, target);
  assert.equal(result.ws, 'refused', 'a cross-origin WebSocket was accepted');
  assert.equal(result.read, 'blocked', 'a cross-origin page read the flow');

  for (const p of ['/api/flows?mode=full', '/api/inject/in1']) {
    assert.ok(ed.log.includes(`response 403: POST ${env.url}${p}`), `POST ${p} from another origin was not answered 403`);
  }

  const after = await getFlows();
  assert.equal(after.rev, before.rev, 'a cross-origin POST deployed');
  assert.deepEqual(after.flows, before.flows);
  assert.equal(await injected(), outBefore, 'a cross-origin inject ran');
}

/** How many messages in1 has sent. */
async function injected() {
  const c = await api('GET', '/api/counters');
  assert.equal(c.status, 200, c.text);
  return c.body?.counters?.in1?.Out ?? 0;
}
