// The node types the server declares (the `types` command), plus the inert
// `comment` type the engine reserves. Everything the palette, the canvas
// and the property form know about a type comes from here.

import { clone } from './dom.js';

const COMMENT = {
  type: 'comment',
  category: 'common',
  label: 'comment',
  color: '#ffffff',
  icon: 'comment',
  inputs: 0,
  outputs: 0,
  configNode: false,
  summary: 'A note on the canvas. It does nothing when the flow runs.',
  help: 'Write the note in **Name**; longer text goes in **info** (Markdown), shown here when the comment is selected.',
  fields: [{ name: 'info', kind: 'text', help: 'Longer notes (Markdown).' }],
  builtin: true,
};

const CATEGORY_ORDER = ['common', 'function', 'modbus', 'thingsboard'];

const registry = new Map();

export function setTypes(list) {
  registry.clear();
  for (const t of list || []) {
    const name = t.type || t.name;
    if (!name) continue;
    registry.set(name, { ...t, type: name, fields: t.fields || [] });
  }
  if (!registry.has('comment')) registry.set('comment', COMMENT);
}

export function getType(name) {
  return registry.get(name);
}

/** Palette types (no config nodes), grouped and ordered by category. */
export function paletteGroups() {
  const groups = new Map();
  for (const t of registry.values()) {
    if (t.configNode) continue;
    const c = t.category || 'other';
    if (!groups.has(c)) groups.set(c, []);
    groups.get(c).push(t);
  }
  const rank = (c) => {
    const i = CATEGORY_ORDER.indexOf(c);
    return i < 0 ? CATEGORY_ORDER.length : i;
  };
  return [...groups.entries()]
    .sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]))
    .map(([category, types]) => ({ category, types: types.sort((a, b) => typeLabel(a.type).localeCompare(typeLabel(b.type))) }));
}

export function isConfigType(name) {
  return !!registry.get(name)?.configNode;
}

export function typeLabel(name) {
  return registry.get(name)?.label || name;
}

/** The label a node shows: its name, else its type's label. */
export function nodeLabel(node) {
  if (!node) return '';
  if (node.type === 'tab') return node.label || node.id;
  return node.name || typeLabel(node.type);
}

export function inputCount(node) {
  const t = registry.get(node.type);
  if (!t) return node.type === 'tab' ? 0 : 1;
  return t.inputs > 0 ? 1 : 0;
}

export function outputCount(node) {
  const t = registry.get(node.type);
  if (!t) return Array.isArray(node.wires) ? node.wires.length : 0;
  if (t.outputsField) {
    const rows = node[t.outputsField];
    if (typeof rows === 'number') return rows;
    return Array.isArray(rows) ? rows.length : 0;
  }
  return t.outputs || 0;
}

/** Labels of a node's outputs: the type's port labels, or per row of its outputs table. */
export function outputLabels(node) {
  const t = registry.get(node.type);
  if (!t) return [];
  if (!t.outputsField) return Array.isArray(t.outputLabels) ? t.outputLabels : [];
  const rows = node[t.outputsField];
  // A number of outputs (a function's "outputs"): the type's labels, then "output n".
  if (typeof rows === 'number') return Array.from({ length: rows }, (_, i) => t.outputLabels?.[i] || `output ${i + 1}`);
  if (!Array.isArray(rows)) return [];
  return rows.map((r, i) => {
    if (r && typeof r === 'object') return r.label || r.condition || r.name || r.key || `output ${i + 1}`;
    return `output ${i + 1}`;
  });
}

/** The default field values of a type, for a new node. */
export function defaultsFor(name) {
  const out = {};
  for (const f of registry.get(name)?.fields || []) {
    if (f.default !== undefined) out[f.name] = clone(f.default);
  }
  return out;
}

/** Names of a type's secret fields. */
export function secretFields(name) {
  return (registry.get(name)?.fields || []).filter((f) => f.kind === 'secret' || f.secret).map((f) => f.name);
}

/** Names of a type's config-ref fields with the type they point to. */
export function refFields(name) {
  return (registry.get(name)?.fields || []).filter((f) => f.kind === 'config-ref').map((f) => ({ name: f.name, ref: f.ref }));
}

/**
 * Whether a field applies given the values of its siblings (a node's
 * fields or a table row): its spec's showIf names sibling fields and the
 * values they must have; an absent sibling counts as its default.
 */
export function applies(f, values, siblings = []) {
  if (!f?.showIf) return true;
  for (const [k, allowed] of Object.entries(f.showIf)) {
    let v = values?.[k];
    if (v === undefined || v === null) v = siblings.find((x) => x.name === k)?.default;
    const key = JSON.stringify(v);
    if (!(allowed || []).some((a) => JSON.stringify(a) === key)) return false;
  }
  return true;
}
