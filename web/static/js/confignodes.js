// The config panel: every config node (connections) with the number of
// nodes using it; click one to edit it.

import { $, h, clear } from './dom.js';
import { nodeLabel, typeLabel, getType, refFields } from './types.js';

export function createConfigPanel({ model, forms }) {
  const root = $('#config-nodes');

  function users(id) {
    return model.all().filter((n) => refFields(n.type).some((f) => n[f.name] === id)).length;
  }

  function render() {
    clear(root);
    const configs = model.configNodes();
    if (!configs.length) {
      root.append(h('p', { class: 'help-empty', text: 'No config nodes yet. They are made from the fields that use them, such as a node\'s "connection".' }));
      return;
    }
    const byType = new Map();
    for (const c of configs) {
      if (!byType.has(c.type)) byType.set(c.type, []);
      byType.get(c.type).push(c);
    }
    for (const [type, list] of byType) {
      root.append(h('h3', { class: 'config-type', text: typeLabel(type) }));
      for (const c of list) {
        const n = users(c.id);
        const item = h(
          'button',
          { type: 'button', class: ['config-node', n === 0 && 'unused', model.isChanged(c.id) && 'changed'], 'data-id': c.id, title: `Edit ${nodeLabel(c)} (${c.id})` },
          h('span', { class: 'config-swatch', style: { background: getType(type)?.color || '#ddd' } }),
          h('span', { class: 'config-name', text: nodeLabel(c) }),
          h('span', { class: 'config-users', text: n === 0 ? 'unused' : `${n} node${n === 1 ? '' : 's'}` }),
        );
        item.addEventListener('click', () => forms.open(c.id));
        root.append(item);
      }
    }
  }

  model.on('change', render);
  render();
  return { render };
}
