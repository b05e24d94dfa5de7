// The WebSocket channel to the server (docs/editor-api.md): commands with
// ids answered by promises with timeouts, topic subscriptions matched
// MQTT-style, reconnect with backoff (0.5 s doubling to 10 s) and
// re-subscription after every reconnect. It sets body[data-conn].

import { createEmitter } from './events.js';

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 10000;
const PING_EVERY = 25000;

/** An error answered by the server: code, message and, for `invalid`, problems. */
export class CommandError extends Error {
  constructor(code, message, problems) {
    super(message || code);
    this.name = 'CommandError';
    this.code = code;
    this.problems = problems || [];
  }
}

/** Whether an MQTT-style topic filter matches a topic. */
export function topicMatches(filter, topic) {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function createComms({ path = '/api/ws' } = {}) {
  const emitter = createEmitter();
  const pending = new Map();
  const subs = new Map();
  let ws = null;
  let nextId = 1;
  let backoff = BACKOFF_MIN;
  let retryTimer = null;
  let pingTimer = null;
  let running = false;
  let everOpened = false;
  let state = 'closed';

  function setState(s, info) {
    state = s;
    document.body.dataset.conn = s;
    emitter.emit('state', s, info);
  }

  function url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${path}`;
  }

  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function failPending(reason) {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new CommandError('offline', reason));
      pending.delete(id);
    }
  }

  function connect() {
    retryTimer = null;
    if (!running) return;
    setState('connecting');
    let sock;
    try {
      sock = new WebSocket(url());
    } catch {
      scheduleReconnect();
      return;
    }
    ws = sock;
    let opened = false;
    sock.addEventListener('open', () => {
      if (ws !== sock) return;
      opened = true;
      backoff = BACKOFF_MIN;
      const reconnect = everOpened;
      everOpened = true;
      setState('open');
      emitter.emit('open', { reconnect });
      const topics = [...subs.keys()].filter((t) => subs.get(t).remote);
      if (topics.length) request('subscribe', { topics }).catch(() => {});
      clearInterval(pingTimer);
      pingTimer = setInterval(() => request('ping', {}, 10000).catch(() => {}), PING_EVERY);
    });
    sock.addEventListener('message', (ev) => receive(ev.data));
    sock.addEventListener('close', (ev) => {
      if (ws !== sock) return;
      ws = null;
      clearInterval(pingTimer);
      failPending('the connection closed');
      emitter.emit('close', { opened, code: ev.code });
      if (running) scheduleReconnect();
      else setState('closed');
    });
  }

  function scheduleReconnect() {
    const delay = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
    setState('closed', { retryIn: delay });
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event) {
      const ev = frame.event;
      for (const [filter, entry] of subs) {
        if (topicMatches(filter, ev.topic || '')) for (const fn of [...entry.fns]) fn(ev);
      }
      return;
    }
    const p = pending.get(frame.id);
    if (!p) return;
    pending.delete(frame.id);
    clearTimeout(p.timer);
    if (frame.error) p.reject(new CommandError(frame.error.code, frame.error.message, frame.error.problems));
    else p.resolve(frame.result ?? {});
  }

  /**
   * Sends a command and resolves with its result.
   * @param {string} cmd @param {object} [args] @param {number} [timeout] ms
   */
  function request(cmd, args, timeout = 15000) {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      const frame = { id, cmd };
      if (args !== undefined) frame.args = args;
      if (!send(frame)) {
        reject(new CommandError('offline', 'not connected to the server'));
        return;
      }
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new CommandError('timeout', `the server did not answer "${cmd}" in time`));
      }, timeout);
      pending.set(id, { resolve, reject, timer });
    });
  }

  /**
   * Calls fn for every event whose topic matches filter. Local-only
   * subscriptions (remote false) are for events the server sends unasked.
   * @returns {() => void} unsubscribe
   */
  function subscribe(filter, fn, { remote = true } = {}) {
    let entry = subs.get(filter);
    if (!entry) {
      entry = { fns: new Set(), remote };
      subs.set(filter, entry);
      if (remote && state === 'open') request('subscribe', { topics: [filter] }).catch(() => {});
    }
    entry.fns.add(fn);
    return () => {
      entry.fns.delete(fn);
      if (entry.fns.size === 0) {
        subs.delete(filter);
        if (entry.remote && state === 'open') request('unsubscribe', { topics: [filter] }).catch(() => {});
      }
    };
  }

  return {
    on: emitter.on,
    request,
    subscribe,
    get state() {
      return state;
    },
    start() {
      if (running) return;
      running = true;
      connect();
    },
    stop() {
      running = false;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (ws) {
        const sock = ws;
        ws = null;
        sock.close();
      }
      failPending('the connection closed');
      setState('closed');
    },
    /** Reconnects at once (after a login, or when the user asks). */
    retryNow() {
      if (!running || ws) return;
      clearTimeout(retryTimer);
      backoff = BACKOFF_MIN;
      connect();
    },
  };
}
