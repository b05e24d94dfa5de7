// How a node looks on the canvas: its size from the label, the body with
// the icon area, ports, the inject button, the status badge, and the
// changed / problem markers.

import { s, clear } from './dom.js';
import { getType, inputCount, outputCount, outputLabels, nodeLabel, typeLabel } from './types.js';
import { iconGlyph } from './icons.js';

export const FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif';
const LABEL_FONT = `13px ${FONT_FAMILY}`;
const ICON_W = 30;
export const PORT = 10;

const STATUS_FONT = `11px ${FONT_FAMILY}`;
const STATUS_MAX = 40;

let measure = null;
const widths = new Map();

export function textWidth(text, font = LABEL_FONT) {
  if (!measure) measure = document.createElement('canvas').getContext('2d');
  const key = font + '\u0000' + text;
  let w = widths.get(key);
  if (w === undefined) {
    measure.font = font;
    w = measure.measureText(text).width;
    if (widths.size > 2000) widths.clear();
    widths.set(key, w);
  }
  return w;
}

/** Size and port layout of a node (its x, y are its centre, as in Node-RED). */
export function geometry(node) {
  const t = getType(node.type);
  const inputs = inputCount(node);
  const outputs = outputCount(node);
  const label = nodeLabel(node);
  const comment = node.type === 'comment';
  const iconRight = !!t && t.inputs > 0 && outputs === 0 && !comment;
  const tw = textWidth(label);
  const w = comment ? Math.max(60, Math.ceil((tw + 24) / 10) * 10) : Math.max(100, Math.ceil((tw + ICON_W + 24) / 10) * 10);
  const h = Math.max(30, outputs * 15);
  return { w, h, inputs, outputs, label, iconRight, comment };
}

export function portY(g, i) {
  return g.outputs <= 1 ? g.h / 2 : (g.h * (i + 0.5)) / g.outputs;
}

/** Top-left corner of a node's body. */
export function origin(node, g, dx = 0, dy = 0) {
  return { x: (Number(node.x) || 0) + dx - g.w / 2, y: (Number(node.y) || 0) + dy - g.h / 2 };
}

const STATUS_FILLS = new Set(['red', 'green', 'yellow', 'blue', 'grey']);

function iconArea(g) {
  const { w, h } = g;
  const r = 5;
  if (g.iconRight) {
    const x = w - ICON_W;
    return `M${x} 0H${w - r}A${r} ${r} 0 0 1 ${w} ${r}V${h - r}A${r} ${r} 0 0 1 ${w - r} ${h}H${x}Z`;
  }
  return `M${ICON_W} 0H${r}A${r} ${r} 0 0 0 0 ${r}V${h - r}A${r} ${r} 0 0 0 ${r} ${h}H${ICON_W}Z`;
}

/**
 * The facts a node's drawing depends on; the canvas redraws a node only
 * when these change.
 */
export function describe(node, { status, changed, problems }) {
  const t = getType(node.type);
  const g = geometry(node);
  return {
    g,
    type: node.type,
    known: !!t,
    color: t?.color || '#dddddd',
    icon: t?.icon || '',
    disabled: node.d === true,
    inject: node.type === 'inject',
    debugButton: node.type === 'debug' && !!t,
    debugActive: node.active !== false,
    portLabels: outputLabels(node),
    status: status || null,
    changed: !!changed,
    problems: (problems || []).map((p) => `${p.field ? p.field + ': ' : ''}${p.message}`),
    error: (problems || []).some((p) => p.severity !== 'warning'),
  };
}

/** (Re)draws the content of a node's <g> from describe()'s facts. */
export function draw(el, node, d) {
  const { g } = d;
  clear(el);
  const tip = d.problems.length ? `${g.label}\n${d.problems.join('\n')}` : `${g.label} (${typeLabel(node.type)})`;
  el.append(s('title', { text: tip }));
  el.append(s('rect', { class: 'node-body', x: 0, y: 0, width: g.w, height: g.h, rx: 5, ry: 5, fill: d.color }));
  if (!g.comment) {
    el.append(s('path', { class: 'node-icon-area', d: iconArea(g) }));
    el.append(iconGlyph(d.icon, g.iconRight ? g.w - ICON_W + 7 : 7, g.h / 2 - 8));
  }
  const lx = g.comment ? 12 : g.iconRight ? 12 : ICON_W + 10;
  el.append(s('text', { class: 'node-label', x: lx, y: g.h / 2, text: g.label }));
  if (g.inputs > 0) {
    el.append(s('rect', { class: 'port in', x: -PORT / 2, y: g.h / 2 - PORT / 2, width: PORT, height: PORT, rx: 3, ry: 3 }));
  }
  for (let i = 0; i < g.outputs; i++) {
    const port = s('rect', { class: 'port out', 'data-port': i, x: g.w - PORT / 2, y: portY(g, i) - PORT / 2, width: PORT, height: PORT, rx: 3, ry: 3 });
    if (d.portLabels[i]) port.setAttribute('data-label', d.portLabels[i]);
    el.append(port);
  }
  if (d.inject) {
    el.append(
      s(
        'g',
        { class: 'inject-button', transform: `translate(-26 ${g.h / 2 - 11})`, role: 'button', 'aria-label': 'Inject' },
        s('title', { text: 'Inject now' }),
        s('rect', { x: 0, y: 0, width: 20, height: 22, rx: 4, ry: 4, fill: d.color }),
        s('path', { d: 'M7.5 6.5 13.5 11 7.5 15.5Z' }),
      ),
    );
  }
  if (d.debugButton) {
    el.append(
      s(
        'g',
        { class: ['debug-button', d.debugActive ? 'on' : 'off'], transform: `translate(${g.w + 6} ${g.h / 2 - 11})`, role: 'button', 'aria-pressed': String(d.debugActive), 'aria-label': 'Debug messages on or off' },
        s('title', { text: d.debugActive ? 'Showing messages: click to switch off' : 'Switched off: click to show messages' }),
        s('rect', { x: 0, y: 0, width: 20, height: 22, rx: 4, ry: 4, fill: d.color }),
        s('rect', { class: 'debug-button-fill', x: 5, y: 6, width: 10, height: 10, rx: 2, ry: 2 }),
      ),
    );
  }
  if (d.changed) el.append(s('circle', { class: 'changed-marker', cx: g.w - 9, cy: 0, r: 4 }));
  if (d.problems.length) {
    const x = g.w - (d.changed ? 26 : 14);
    el.append(
      s(
        'g',
        { class: ['problem-marker', d.error ? 'error' : 'warning'], transform: `translate(${x} -7)` },
        s('path', { d: 'M6 0 12 11H0Z' }),
        s('path', { class: 'problem-mark', d: 'M6 3.5v3.6M6 8.6v.4' }),
      ),
    );
  }
  if (d.status) {
    // Centred under the node, so the node's box stays centred on its body.
    const fill = STATUS_FILLS.has(d.status.fill) ? d.status.fill : 'grey';
    const shape = d.status.shape === 'ring' ? 'ring' : 'dot';
    const full = d.status.text;
    const text = full.length > STATUS_MAX ? full.slice(0, STATUS_MAX - 1) + '…' : full;
    const total = 10 + (text ? 4 + textWidth(text, STATUS_FONT) : 0);
    const x0 = -total / 2;
    el.append(
      s(
        'g',
        { class: ['status', `status-${fill}`, `status-${shape}`], transform: `translate(${g.w / 2} ${g.h + 10})` },
        full.length > STATUS_MAX ? s('title', { text: full }) : null,
        s('circle', { class: 'status-shape', cx: x0 + 5, cy: 0, r: shape === 'ring' ? 3.8 : 4.5 }),
        s('text', { x: x0 + 14, y: 0, text }),
      ),
    );
  }
}
