// The help panel: the type of the selected node (or the hovered palette
// entry) with its summary, Markdown help and fields; with nothing
// selected, the current tab's description.

import { $, h, clear } from './dom.js';
import { bus } from './events.js';
import { getType, typeLabel, nodeLabel, outputLabels } from './types.js';
import { markdown, inline } from './markdown.js';

function fmtDefault(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return v === '' ? '""' : v;
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

function fieldList(fields, nested = false) {
  return h(
    'dl',
    { class: ['help-fields', nested && 'nested'] },
    fields.map((f) => [
      h(
        'dt',
        null,
        f.label && f.label !== f.name ? h('span', { class: 'help-label', text: f.label }) : null,
        h('code', { text: f.name }),
        h('span', { class: 'help-kind', text: f.kind === 'config-ref' ? `→ ${typeLabel(f.ref)}` : f.kind }),
        f.required ? h('span', { class: 'help-required', text: 'required' }) : null,
        f.advanced ? h('span', { class: 'help-advanced', text: 'advanced' }) : null,
      ),
      h(
        'dd',
        null,
        f.help ? inline(f.help) : null,
        f.enum ? h('div', { class: 'help-enum' }, 'One of ', f.enum.map((e, i) => [i ? ', ' : '', h('code', { text: e })])) : null,
        f.showIf ? h('div', { class: 'help-showif' }, 'Only when ', Object.entries(f.showIf).map(([k, vs], i) => [i ? ' and ' : '', h('code', { text: k }), vs.length > 1 ? ' is one of ' : ' is ', vs.map((v, j) => [j ? ', ' : '', h('code', { text: typeof v === 'string' ? v : JSON.stringify(v) })])])) : null,
        f.default !== undefined && f.kind !== 'table' ? h('div', { class: 'help-default' }, 'Default ', h('code', { text: fmtDefault(f.default) })) : null,
        f.kind === 'table' && f.fields?.length ? fieldList(f.fields, true) : null,
      ),
    ]),
  );
}

export function createHelp({ model, view }) {
  const root = $('#help');
  let shown = null;

  function renderType(typeName, node) {
    clear(root);
    const t = getType(typeName);
    const header = h(
      'div',
      { class: 'help-header' },
      h('span', { class: 'help-swatch', style: { background: t?.color || '#ddd' } }),
      h(
        'div',
        null,
        h('div', { class: 'help-title', text: node ? nodeLabel(node) : typeLabel(typeName) }),
        // One name per node type: the palette's. The type name is added
        // only where it differs from it.
        h('div', { class: 'help-sub' }, node && node.name ? [h('span', { class: 'help-type', text: typeLabel(typeName) }), ' '] : null, typeLabel(typeName) !== typeName ? h('code', { text: typeName }) : null, t?.category ? `${node?.name || typeLabel(typeName) !== typeName ? ' · ' : ''}${t.category}` : ''),
      ),
    );
    root.append(header);
    if (node) root.append(h('div', { class: 'help-node-id' }, 'node ', h('code', { text: node.id })));
    if (!t) {
      root.append(h('p', { class: 'help-summary', text: 'This node type is not known to this server: it cannot be deployed.' }));
      return;
    }
    if (t.summary) root.append(h('p', { class: 'help-summary' }, inline(t.summary)));
    if (!t.configNode && !t.builtin) {
      const countField = t.outputsField && (t.fields || []).find((f) => f.name === t.outputsField)?.kind === 'int';
      const outs = countField ? `outputs set by ${t.outputsField}` : t.outputsField ? `one output per row of ${t.outputsField}` : `${t.outputs || 0} output${t.outputs === 1 ? '' : 's'}`;
      root.append(h('p', { class: 'help-ports', text: `${t.inputs > 0 ? '1 input' : 'no input'} · ${outs}` }));
      const labels = node ? outputLabels(node) : t.outputLabels || [];
      if (labels.length) root.append(h('ol', { class: 'help-outputs' }, labels.map((l) => h('li', { text: l }))));
    }
    if (node?.info && node.type !== 'comment') root.append(h('div', { class: 'help-info' }, markdown(node.info)));
    if (node?.type === 'comment' && node.info) root.append(h('div', { class: 'help-body' }, markdown(node.info)));
    if (t.help) root.append(h('div', { class: 'help-body' }, markdown(t.help)));
    if (t.fields?.length && !t.builtin) root.append(h('h3', { text: 'Properties' }), fieldList(t.fields));
  }

  function renderTab() {
    clear(root);
    const tab = model.get(view.tab);
    if (!tab) {
      root.append(h('p', { class: 'help-empty', text: 'Select a node or point at a palette entry to see its help.' }));
      return;
    }
    root.append(h('div', { class: 'help-header' }, h('div', null, h('div', { class: 'help-title', text: tab.label || tab.id }), h('div', { class: 'help-sub', text: 'flow tab' }))));
    if (tab.info) root.append(h('div', { class: 'help-body' }, markdown(tab.info)));
    root.append(h('p', { class: 'help-empty', text: 'Select a node or point at a palette entry to see its help.' }));
  }

  function show(what) {
    shown = what;
    if (what?.type) renderType(what.type, what.node ? model.get(what.node) : null);
    else renderTab();
  }

  bus.on('help', show);
  view.on('selection', () => {
    const sel = view.selectedNodes();
    if (sel.length === 1) {
      const n = model.get(sel[0]);
      if (n) show({ type: n.type, node: n.id });
    } else if (sel.length === 0 && (!shown || shown.node)) {
      show(null);
    }
  });
  view.on('tab', () => show(null));
  model.on('change', () => {
    if (shown?.node && !model.has(shown.node)) show(null);
    else if (shown?.node) show(shown);
    else if (!shown) show(null);
  });

  return { show };
}
