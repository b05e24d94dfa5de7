// @ts-check
// The harness of the editor's end-to-end tests: Debian's chromium driven by
// playwright-core, one fresh browser profile per test, the browser console
// and every page error collected (a test fails on any of them), screenshots
// in the artifacts directory, and the server's REST mirror for setting up
// and checking state behind the editor's back.
//
// Environment (set by web/e2e_test.go):
//   TBFLOW_URL        the server, e.g. http://127.0.0.1:40123 (required)
//   TBFLOW_ARTIFACTS  where screenshots and console logs go (default ./artifacts)
//   TBFLOW_E2E_TMP    where browser profiles are made (default the OS temp dir)
//   TBFLOW_FLOWS_FILE the server's flow file; TBFLOW_CRED_FILE its credentials file
//   TBFLOW_AUTH_URL   a second server over the same engine that wants a login,
//   TBFLOW_AUTH_TOKEN with this access token

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** @param {string} name */
function envRequired(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run the tests through go test -run TestE2E ./web/`);
  return v;
}

export const env = {
  url: envRequired('TBFLOW_URL').replace(/\/$/, ''),
  artifacts: path.resolve(process.env.TBFLOW_ARTIFACTS || 'artifacts'),
  tmp: process.env.TBFLOW_E2E_TMP || os.tmpdir(),
  flowsFile: process.env.TBFLOW_FLOWS_FILE || '',
  credFile: process.env.TBFLOW_CRED_FILE || '',
  authURL: (process.env.TBFLOW_AUTH_URL || '').replace(/\/$/, ''),
  authToken: process.env.TBFLOW_AUTH_TOKEN || '',
};

/** How long a single wait for the editor may take. */
export const WAIT = 10_000;

/** @param {string} s */
function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

// ---------------------------------------------------------------- REST

/**
 * A request to the server's REST mirror, without an Origin (as a script).
 * @param {string} method
 * @param {string} p
 * @param {any} [body]
 * @param {Record<string,string>} [headers]
 * @returns {Promise<{status: number, body: any, text: string}>}
 */
export async function api(method, p, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(env.url + p, init);
  const text = await res.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** The deployed flow and its revision. @returns {Promise<{flows: any[], rev: string, text: string}>} */
export async function getFlows() {
  const r = await api('GET', '/api/flows');
  assert.equal(r.status, 200, `GET /api/flows: ${r.status} ${r.text}`);
  assert.ok(Array.isArray(r.body?.flows), `GET /api/flows has no flows array: ${r.text}`);
  return { flows: r.body.flows, rev: r.body.rev, text: r.text };
}

/**
 * Deploys flows through REST (a full deploy, no revision check) and returns
 * the new revision.
 * @param {any[]} flows
 */
export async function deployFlows(flows) {
  const r = await api('POST', '/api/flows?mode=full', flows);
  assert.equal(r.status, 200, `POST /api/flows: ${r.status} ${r.text}`);
  assert.ok(r.body?.rev, `POST /api/flows answered no rev: ${r.text}`);
  return /** @type {string} */ (r.body.rev);
}

/** A flow of one empty tab: what each test starts from. */
export function emptyFlow(tab = 'tab1') {
  return [{ id: tab, type: 'tab', label: 'Flow 1' }];
}

/** The nodes of a flow that are not tabs or config nodes. @param {any[]} flows */
export function flowNodes(flows) {
  return flows.filter((n) => n.type !== 'tab' && n.z);
}

// ---------------------------------------------------------------- browser

/**
 * Runs fn as a test with a fresh browser and an editor page opened on a
 * server holding `flow` (an empty tab unless given). The test fails on any
 * page error or console error (except those matching `allow`, for errors a
 * test provokes on purpose), and leaves its screenshots and the console
 * log in <artifacts>/<test>/. With open: false the page is left blank.
 * @param {string} name
 * @param {(ed: Editor, t: import('node:test').TestContext) => Promise<void>} fn
 * @param {{flow?: any[], timeout?: number, open?: boolean, allow?: RegExp[]}} [opts]
 */
export function editorTest(name, fn, opts = {}) {
  test(name, { timeout: opts.timeout ?? 55_000 }, async (t) => {
    await deployFlows(opts.flow ?? emptyFlow());
    const ed = await Editor.launch(name);
    // A test that runs out of time closes its browser, so that nothing it
    // still waits for keeps the script alive.
    const onAbort = () => ed.ctx.close().catch(() => {});
    t.signal.addEventListener('abort', onAbort);
    let ok = false;
    try {
      if (opts.open ?? true) await ed.open();
      await fn(ed, t);
      ok = true;
    } finally {
      t.signal.removeEventListener('abort', onAbort);
      await ed.close(!ok);
    }
    ed.assertClean(opts.allow ?? []);
  });
}

export class Editor {
  /** @param {string} name @param {string} profile @param {import('playwright-core').BrowserContext} ctx @param {import('playwright-core').Page} page */
  constructor(name, profile, ctx, page) {
    this.name = name;
    this.dir = path.join(env.artifacts, slug(name));
    this.profile = profile;
    this.ctx = ctx;
    this.page = page;
    /** @type {string[]} console messages, page errors, failed requests, 4xx/5xx answers and WebSocket opens and closes, in order */
    this.log = [];
    /** @type {string[]} the console errors and page errors: each fails the test */
    this.errors = [];
    /** @type {string[]} the payload of every WebSocket frame the page received */
    this.framesIn = [];
    /** @type {string[]} the payload of every WebSocket frame the page sent */
    this.framesOut = [];
    this.shots = 0;
  }

  /** @param {string} name */
  static async launch(name) {
    const profile = await fs.mkdtemp(path.join(env.tmp, 'chromium-'));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 860 },
      deviceScaleFactor: 1,
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const ed = new Editor(name, profile, ctx, page);
    try {
      // No screenshot of an earlier run stays beside this one's.
      await fs.rm(ed.dir, { recursive: true, force: true });
      await fs.mkdir(ed.dir, { recursive: true });
      await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.url });
    } catch (err) {
      await ctx.close();
      await fs.rm(profile, { recursive: true, force: true });
      throw err;
    }
    page.setDefaultTimeout(WAIT);
    page.on('console', (m) => {
      const loc = m.location();
      const where = loc.url ? ` (${loc.url}:${loc.lineNumber})` : '';
      const line = `console.${m.type()}: ${m.text()}${where}`;
      ed.log.push(line);
      if (m.type() === 'error') ed.errors.push(line);
    });
    page.on('pageerror', (err) => {
      const line = `page error: ${err.stack || err.message}`;
      ed.log.push(line);
      ed.errors.push(line);
    });
    page.on('requestfailed', (r) => {
      ed.log.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) ed.log.push(`response ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
    page.on('websocket', (ws) => {
      ed.log.push(`websocket open: ${ws.url()}`);
      ws.on('framereceived', (f) => ed.framesIn.push(String(f.payload)));
      ws.on('framesent', (f) => ed.framesOut.push(String(f.payload)));
      ws.on('close', () => ed.log.push(`websocket closed: ${ws.url()}`));
    });
    return ed;
  }

  /** Loads the editor and waits until its WebSocket is open and the palette is filled. */
  async open(url = env.url) {
    await this.page.goto(url + '/');
    await this.waitOpen();
  }

  /** Reloads the page and waits as open does. */
  async reload() {
    await this.page.reload();
    await this.waitOpen();
  }

  async waitOpen() {
    await this.page.locator('body[data-conn="open"]').waitFor({ state: 'attached' });
    await this.page.locator('#palette .palette-node').first().waitFor();
    // The deployed flow is drawn: every node of the first tab is on the canvas.
    const { flows } = await getFlows();
    const tab = flows.find((/** @type {any} */ n) => n.type === 'tab');
    for (const n of tab ? flows.filter((/** @type {any} */ n) => n.z === tab.id) : []) {
      await this.page.locator(`svg#canvas g.node[data-id="${n.id}"]`).waitFor({ state: 'attached' });
    }
  }

  /** Saves a screenshot of the page as <artifacts>/<test>/<nn>-<step>.png. @param {string} step */
  async shot(step) {
    this.shots++;
    const file = path.join(this.dir, `${String(this.shots).padStart(2, '0')}-${slug(step)}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /** @param {boolean} failed */
  async close(failed) {
    if (failed) {
      await this.page
        .screenshot({ path: path.join(this.dir, 'failure.png') })
        .catch((e) => this.log.push(`failure screenshot: ${e.message}`));
      console.log(`# ${this.name}: screenshots and console log in ${this.dir}; the page's last log lines:`);
      for (const l of this.log.slice(-30)) console.log(`#   ${l}`);
    }
    await fs.writeFile(path.join(this.dir, 'console.log'), this.log.join('\n') + '\n');
    await this.ctx.close().catch(() => {});
    await fs.rm(this.profile, { recursive: true, force: true });
  }

  /** @param {RegExp[]} allow */
  assertClean(allow) {
    const errors = this.errors.filter((e) => !allow.some((re) => re.test(e)));
    assert.deepEqual(errors, [], `the page logged errors (console log in ${this.dir})`);
  }

  // ---------------------------------------------------------- canvas

  /** @param {string} sel */
  $(sel) {
    return this.page.locator(sel);
  }

  /** @param {string} id */
  node(id) {
    return this.page.locator(`svg#canvas g.node[data-id="${id}"]`);
  }

  /** The ids of the nodes on the canvas, optionally of one type. @param {string} [type] */
  async nodeIds(type) {
    const sel = type ? `svg#canvas g.node[data-type="${type}"]` : 'svg#canvas g.node';
    return this.page.locator(sel).evaluateAll((els) => els.map((e) => e.getAttribute('data-id') ?? ''));
  }

  /** The canvas's box in page coordinates. */
  async canvasBox() {
    const box = await this.$('svg#canvas').boundingBox();
    assert.ok(box, 'svg#canvas is not visible');
    return box;
  }

  /**
   * Drags a palette entry onto the canvas with real mouse moves and returns
   * the new node's id. x and y are relative to the canvas's top left corner.
   * @param {string} type @param {number} x @param {number} y
   */
  async dragFromPalette(type, x, y) {
    const before = new Set(await this.nodeIds());
    const entry = this.$(`#palette .palette-node[data-type="${type}"]`);
    await entry.scrollIntoViewIfNeeded();
    const from = await entry.boundingBox();
    assert.ok(from, `palette entry ${type} is not visible`);
    const canvas = await this.canvasBox();
    const m = this.page.mouse;
    await m.move(from.x + from.width / 2, from.y + from.height / 2);
    await m.down();
    await m.move(from.x + from.width / 2 + 20, from.y + from.height / 2 + 5, { steps: 4 });
    await m.move(canvas.x + x, canvas.y + y, { steps: 12 });
    await m.up();
    await this.page.waitForFunction(
      ([t, known]) =>
        [...document.querySelectorAll(`svg#canvas g.node[data-type="${t}"]`)].some(
          (e) => !known.includes(e.getAttribute('data-id') ?? ''),
        ),
      /** @type {[string, string[]]} */ ([type, [...before]]),
    );
    const fresh = (await this.nodeIds(type)).filter((id) => !before.has(id));
    assert.equal(fresh.length, 1, `dropping ${type} from the palette made ${fresh.length} new nodes`);
    return fresh[0];
  }

  /**
   * Wires output port `port` of node `from` to the input of node `to` with
   * real mouse moves, and waits for the wire.
   * @param {string} from @param {number} port @param {string} to
   */
  async wire(from, port, to) {
    const out = await this.node(from).locator(`.port.out[data-port="${port}"]`).boundingBox();
    const inp = await this.node(to).locator('.port.in').boundingBox();
    assert.ok(out && inp, `ports of ${from} or ${to} are not visible`);
    const m = this.page.mouse;
    await m.move(out.x + out.width / 2, out.y + out.height / 2);
    await m.down();
    await m.move(out.x + out.width / 2 + 15, out.y + out.height / 2, { steps: 3 });
    await m.move(inp.x + inp.width / 2, inp.y + inp.height / 2, { steps: 12 });
    await m.up();
    await this.$(`path.wire[data-from="${from}"][data-port="${port}"][data-to="${to}"]`).waitFor({ state: 'attached' });
  }

  /** Clicks a node's body (selecting it). @param {string} id @param {{modifiers?: Array<'Shift'|'Control'>}} [opts] */
  async select(id, opts = {}) {
    await this.node(id).locator(bodySel).first().click(opts);
  }

  /** Double-clicks a node and waits for its property form. @param {string} id */
  async edit(id) {
    await this.node(id).locator(bodySel).first().dblclick();
    await this.$('#node-form').waitFor({ state: 'visible' });
  }

  /** A field of the open property form. @param {string} name */
  field(name) {
    return this.$(`#node-form [name="${name}"]`).last();
  }

  /**
   * Sets a field of the open property form the way a user does: picks an
   * option, ticks a box, or clears the input and types.
   * @param {string} name @param {string|boolean} value
   */
  async setField(name, value) {
    const f = this.field(name);
    await f.waitFor({ state: 'visible' });
    const tag = await f.evaluate((e) => e.tagName.toLowerCase() + ':' + (e.getAttribute('type') ?? ''));
    if (tag.startsWith('select:')) {
      await f.selectOption(String(value));
    } else if (tag === 'input:checkbox') {
      await f.setChecked(Boolean(value));
    } else {
      await f.click();
      await f.press('Control+A');
      await f.press('Delete');
      await f.pressSequentially(String(value));
    }
  }

  /** Closes the property form with Done. */
  async formDone() {
    await this.$('#form-done').last().click();
  }

  /** Waits until no property form is open. */
  async formClosed() {
    await this.$('#node-form').waitFor({ state: 'hidden' });
  }

  /**
   * Presses Deploy and waits until the server holds a new revision and the
   * button has nothing left to deploy. Returns the new revision.
   */
  async deploy() {
    const before = (await getFlows()).rev;
    await this.$('#deploy').click();
    let rev = before;
    await until(async () => {
      rev = (await getFlows()).rev;
      return rev !== before;
    }, 'a deploy from the editor to reach the server');
    await this.$('#deploy:not(.changed)').waitFor({ state: 'attached' });
    return rev;
  }

  /** Presses a node's inject button. @param {string} id */
  async inject(id) {
    await this.node(id).locator('.inject-button').click();
  }

  /** The debug sidebar's messages from node id. @param {string} id */
  debugMsgs(id) {
    return this.$(`#debug .debug-msg[data-node="${id}"]`);
  }

  /** A notification of a kind (error, success, warning). @param {string} kind */
  notification(kind) {
    return this.$(`#notify .notification.${kind}`);
  }

  /** Gives the canvas the keyboard focus without selecting a node. */
  async focusCanvas() {
    const box = await this.canvasBox();
    await this.page.mouse.click(box.x + box.width - 30, box.y + box.height - 30);
  }

  /** Presses a shortcut, e.g. 'Control+Z'. @param {string} keys */
  async press(keys) {
    await this.page.keyboard.press(keys);
  }

  /** The flow the export dialog shows for a scope. @param {'selection'|'tab'|'all'} scope */
  async exportJSON(scope) {
    await this.$('#export').click();
    const dlg = this.$('#export-dialog');
    await dlg.waitFor({ state: 'visible' });
    await dlg.locator('select[name=scope]').selectOption(scope);
    const ta = dlg.locator('textarea');
    let text = '';
    await until(async () => {
      text = await ta.inputValue();
      return text.trim().startsWith('[');
    }, 'the export dialog to show JSON');
    await this.$('#export-close').click();
    await dlg.waitFor({ state: 'hidden' });
    return text;
  }

  /** Imports flow JSON through the import dialog's text box. @param {string} json */
  async importJSON(json) {
    await this.$('#import').click();
    const dlg = this.$('#import-dialog');
    await dlg.waitFor({ state: 'visible' });
    await dlg.locator('textarea').fill(json);
    await this.$('#import-ok').click();
    await dlg.waitFor({ state: 'hidden' });
  }
}

/** What to click on a node: its body, not a port or the inject button. */
const bodySel = 'rect.node-body, rect:not(.port):not(.inject-button)';

/**
 * Polls cond until it is true, failing after timeout ms.
 * @param {() => Promise<boolean>|boolean} cond @param {string} what @param {number} [timeout]
 */
export async function until(cond, what, timeout = WAIT) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
