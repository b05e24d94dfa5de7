// Import (#import-dialog: paste JSON or pick a file) and export
// (#export-dialog: selection, current tab or everything; secrets left
// empty; copy to the clipboard or download as a file).

import { $, clone } from './dom.js';
import { secretFields, refFields } from './types.js';
import { convertNodeRED, showReport, addExportSwitch, fillNodeRED } from './nodered.js';

/** Parses flow JSON as pasted or read from a file: an array, {flows: [...]}, or one node. */
export function parseFlowText(text) {
  const t = text.trim();
  if (!t) throw new Error('Paste flow JSON or choose a file first.');
  let v;
  try {
    v = JSON.parse(t);
  } catch (err) {
    throw new Error(`This is not valid JSON: ${err.message}`);
  }
  if (v && !Array.isArray(v) && Array.isArray(v.flows)) v = v.flows;
  if (v && !Array.isArray(v) && typeof v === 'object') v = [v];
  if (!Array.isArray(v)) throw new Error('Flow JSON is an array of node objects.');
  const bad = v.findIndex((n) => !n || typeof n !== 'object' || Array.isArray(n) || typeof n.type !== 'string' || !n.type);
  if (bad >= 0) throw new Error(`Item ${bad + 1} is not a node: every node is an object with a "type".`);
  if (!v.length) throw new Error('The flow is empty: there is nothing to import.');
  return v;
}

/** A copy of nodes safe to hand out: secret fields emptied. */
export function withoutSecrets(list) {
  return clone(list).map((n) => {
    for (const f of secretFields(n.type)) if (f in n) n[f] = '';
    return n;
  });
}

export function createImportExport({ model, view, actions, canvas, notify }) {
  const imp = $('#import-dialog');
  const impText = imp.querySelector('textarea');
  const impFile = imp.querySelector('input[type=file]');
  const impError = imp.querySelector('.dialog-error');
  const exp = $('#export-dialog');
  const expScope = exp.querySelector('select[name=scope]');
  const expText = exp.querySelector('textarea');
  const expCount = exp.querySelector('.export-count');

  function showImportError(msg) {
    impError.textContent = msg;
    impError.hidden = !msg;
    impText.classList.toggle('error', !!msg);
  }

  function openImport() {
    if (imp.open) return;
    impText.value = '';
    impFile.value = '';
    showImportError('');
    imp.showModal();
    impText.focus();
  }

  impFile.addEventListener('change', async () => {
    const file = impFile.files?.[0];
    if (!file) return;
    try {
      impText.value = await file.text();
      showImportError('');
    } catch (err) {
      showImportError(`Cannot read ${file.name}: ${err.message}`);
    }
  });
  impText.addEventListener('input', () => showImportError(''));

  async function doImport() {
    let list;
    try {
      list = parseFlowText(impText.value);
    } catch (err) {
      showImportError(err.message);
      return;
    }
    if (!view.tab) {
      showImportError('There is no tab to import into yet.');
      return;
    }
    // A Node-RED export is converted by the server (nodered.js).
    let converted = null;
    try {
      converted = await convertNodeRED(list);
    } catch (err) {
      showImportError(`Cannot convert: ${err.message}`);
      return;
    }
    if (converted) list = converted.flows;
    const res = actions.insertNodes(list, { placeAt: canvas.visibleOrigin(), label: 'import' });
    imp.close();
    if (converted) showReport(converted);
    const n = res.ids.length;
    notify(`Imported ${n} node${n === 1 ? '' : 's'}${res.tabs.length ? ` and ${res.tabs.length} tab${res.tabs.length === 1 ? '' : 's'}` : ''}.`, { type: 'success' });
    if (res.unknown.length) {
      notify(`These node types are not known to this server and cannot be deployed: ${res.unknown.join(', ')}.`, { type: 'warning' });
    }
  }

  $('#import-ok').addEventListener('click', doImport);
  $('#import-cancel').addEventListener('click', () => imp.close());
  $('#import').addEventListener('click', openImport);

  // ---------------------------------------------------------- export

  function withConfigs(nodes) {
    const out = [...nodes];
    const seen = new Set(out.map((n) => n.id));
    for (let i = 0; i < out.length; i++) {
      for (const f of refFields(out[i].type)) {
        const id = out[i][f.name];
        const c = typeof id === 'string' && model.get(id);
        if (c && !seen.has(id)) {
          seen.add(id);
          out.push(c);
        }
      }
    }
    return out;
  }

  function collect(scope) {
    if (scope === 'all') return model.toFlows();
    if (scope === 'tab') {
      const tab = model.get(view.tab);
      return clone(withConfigs([tab, ...model.nodesOn(view.tab)].filter(Boolean)));
    }
    const ids = new Set(view.selectedNodes());
    const nodes = clone([...ids].map((id) => model.get(id)).filter(Boolean));
    for (const n of nodes) if (Array.isArray(n.wires)) n.wires = n.wires.map((p) => (Array.isArray(p) ? p.filter((t) => ids.has(t)) : []));
    return clone(withConfigs(nodes));
  }

  function fill() {
    const list = withoutSecrets(collect(expScope.value));
    if (forNodeRED()) fillNodeRED(expText, list, notify);
    else expText.value = JSON.stringify(list, null, 2);
    const flowCount = list.filter((n) => n.type !== 'tab').length;
    expCount.textContent = `${flowCount} node${flowCount === 1 ? '' : 's'}`;
  }

  function openExport() {
    if (exp.open) return;
    const selOpt = expScope.querySelector('option[value=selection]');
    selOpt.disabled = view.selectedNodes().length === 0;
    expScope.value = view.selectedNodes().length ? 'selection' : 'tab';
    fill();
    exp.showModal();
    expText.focus();
    expText.select();
  }

  function filename() {
    const scope = expScope.value;
    const base = scope === 'tab' ? model.get(view.tab)?.label || 'flow' : scope === 'all' ? 'flows' : 'nodes';
    return `${base.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'flows'}.json`;
  }

  const forNodeRED = addExportSwitch(exp, () => fill());
  expScope.addEventListener('change', fill);
  $('#export').addEventListener('click', openExport);
  $('#export-close').addEventListener('click', () => exp.close());
  $('#export-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(expText.value);
      notify('Copied the flow JSON to the clipboard.', { type: 'success' });
    } catch {
      expText.focus();
      expText.select();
      notify('The browser did not allow copying: the JSON is selected, press Ctrl+C.', { type: 'warning' });
    }
  });
  $('#export-download').addEventListener('click', () => {
    const blob = new Blob([expText.value + '\n'], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = filename();
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });

  return { openImport, openExport, isOpen: () => imp.open || exp.open };
}
