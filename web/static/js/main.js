// Bootstrap: builds the editor's parts, signs in when the server asks,
// connects, loads node types and the deployed flow, and keeps statuses,
// problems and the connection indicator current.

import { $ } from './dom.js';
import { bus } from './events.js';
import { createComms } from './comms.js';
import { createModel } from './model.js';
import { createView } from './view.js';
import { createHistory } from './history.js';
import { createStatuses } from './status.js';
import { createProblems } from './problems.js';
import { createActions } from './actions.js';
import { createCanvas } from './canvas.js';
import { createPalette } from './palette.js';
import { createTabs } from './tabs.js';
import { createForms } from './form.js';
import { createHelp } from './help.js';
import { createDebug } from './debug.js';
import { createDeploy } from './deploy.js';
import { createImportExport } from './importexport.js';
import { createConfigPanel } from './confignodes.js';
import { bindKeys } from './keys.js';
import { notify } from './notify.js';
import { confirmDialog } from './dialogs.js';
import { getSession, authorized, showLogin, logout } from './login.js';
import { setTypes, nodeLabel } from './types.js';
import { newId } from './ids.js';
import { createPanels } from './panels.js';
import { createQuickAdd } from './quickadd.js';
import { createSearch } from './search.js';
import { createShortcuts } from './shortcuts.js';
import { createContextMenu } from './menu.js';

const comms = createComms();
const model = createModel();
const view = createView(model);
const statuses = createStatuses();
const problems = createProblems(model, comms);
const actions = createActions({ model, view });
const forms = createForms({ model, problems, confirm: confirmDialog });
const history = createHistory(model, { currentTab: () => view.tab, showTab: (id) => view.setTab(id) });

const panels = createPanels();
let menu = null;
let quickAdd = null;
const canvas = createCanvas({
  model,
  view,
  statuses,
  problems,
  onEdit: (id) => forms.open(id),
  onInject: inject,
  onDrop: (type, x, y) => actions.addNode(type, x, y),
  onMenu: (at) => menu.open(at),
  onQuickAdd: (at) => quickAdd.open(at),
});
quickAdd = createQuickAdd({ canvas });
const search = createSearch({ model });
const shortcuts = createShortcuts();
const palette = createPalette({ canvas, onAdd: (type, x, y) => actions.addNode(type, x, y) });
createTabs({ model, view, confirm: confirmDialog });
createHelp({ model, view });
createDebug({ model, view, comms });
const deploy = createDeploy({ model, comms, problems, reload, nameOf });
const importExport = createImportExport({ model, view, actions, canvas, notify });
createConfigPanel({ model, forms });
bindKeys({ actions, history, forms, deploy, importExport, canvas, view, onEdit: (id) => forms.open(id), search, shortcuts });
menu = createContextMenu({ model, view, actions, canvas, forms, quickAdd, search, shortcuts, panels, onInject: inject });

function nameOf(p) {
  const n = p.id && model.get(p.id);
  if (n) return nodeLabel(n);
  return p.id || p.type || 'flow';
}

// ------------------------------------------------------------ flows

function apply(res) {
  const flows = Array.isArray(res.flows) ? res.flows : [];
  const tabs = new Set(flows.filter((n) => n.type === 'tab').map((n) => n.id));
  const extra = [];
  for (const n of flows) {
    if (n.type !== 'tab' && typeof n.z === 'string' && n.z && !tabs.has(n.z)) {
      tabs.add(n.z);
      extra.push({ id: n.z, type: 'tab', label: `Flow ${tabs.size}` });
    }
  }
  if (!tabs.size) extra.push({ id: newId(), type: 'tab', label: 'Flow 1' });
  forms.closeAll();
  model.load(flows, res.rev, { extraTabs: extra });
  history.clear();
  if (!view.tab || !model.has(view.tab)) view.setTab(model.tabs()[0]?.id || '');
}

async function reload({ reason } = {}) {
  try {
    apply(await comms.request('flows'));
    if (reason === 'remote') notify('The flow was deployed from another editor; this editor now shows it.', { type: 'info', id: 'remote-deploy' });
    else if (reason) notify('Loaded the deployed flow.', { type: 'info', id: 'remote-deploy' });
  } catch (err) {
    notify(`Could not load the flow: ${err.message}`, { type: 'error' });
  }
}

async function inject(id) {
  const n = model.get(id);
  if (!n) return;
  if (!model.isDeployed(id)) {
    notify('Deploy first: this node is not deployed yet.', { type: 'warning', id: 'inject' });
    return;
  }
  try {
    await comms.request('inject', { id });
    const note = model.isChanged(id) ? ' (its deployed settings; your changes are not deployed yet)' : '';
    notify(`Injected: ${nodeLabel(n)}${note}`, { type: 'success', id: 'inject', timeout: 2000 });
  } catch (err) {
    if (err.code === 'not_found') notify('Deploy first: this node is not running.', { type: 'warning', id: 'inject' });
    else notify(`Inject failed: ${err.message}`, { type: 'error', id: 'inject' });
  }
}

bus.on('reveal', (id) => {
  const n = model.get(id);
  if (!n) {
    notify('That node is not in the flow being edited (it may have been deleted).', { type: 'info' });
    return;
  }
  if (!n.z) {
    forms.open(id);
    return;
  }
  view.setTab(n.z);
  view.select([id]);
  canvas.reveal(id);
});

model.on('change', (c) => {
  if (c.label !== 'deployed') problems.schedule(c.label === 'load' ? 0 : undefined);
});

// ------------------------------------------------------------ events

comms.subscribe('status/#', (ev) => {
  const id = (ev.topic || '').slice('status/'.length) || ev.node?.id;
  if (id) statuses.set(id, ev.data);
});
comms.subscribe(
  'dropped',
  (ev) => notify(`The editor fell behind: ${ev.data?.count ?? 'some'} events were dropped (debug messages or statuses may be missing).`, { type: 'warning', id: 'dropped' }),
  { remote: false },
);

let flowsLoaded = false;

comms.on('open', async ({ reconnect }) => {
  if (reconnect) statuses.clear();
  try {
    const t = await comms.request('types');
    setTypes(t.types || []);
    palette.build();
    if (!flowsLoaded || !reconnect) {
      apply(await comms.request('flows'));
      flowsLoaded = true;
    } else {
      canvas.render();
      const res = await comms.request('flows');
      if (res.rev !== model.rev) {
        if (!model.isDirty()) apply(res);
        else deploy.onDeployEvent(res.rev);
      }
    }
  } catch (err) {
    if (err.code !== 'offline') notify(`Could not load from the server: ${err.message}`, { type: 'error' });
  }
});

comms.on('close', async ({ opened }) => {
  if (opened) return;
  const s = await getSession();
  if (s.auth && (s.authenticated === false || (s.authenticated === undefined && !(await authorized())))) {
    comms.stop();
    await showLogin();
    comms.start();
  }
});

// ------------------------------------------------------------ chrome

const connText = { open: 'connected', connecting: 'connecting…', closed: 'disconnected' };
comms.on('state', (state, info) => {
  const el = $('#conn-state');
  el.dataset.state = state;
  let text = connText[state] || state;
  if (state === 'closed' && info?.retryIn) text = `disconnected — retrying in ${Math.ceil(info.retryIn / 1000)} s`;
  el.querySelector('.conn-text').textContent = text;
});
$('#conn-state').addEventListener('click', () => comms.retryNow());

$('#logout').addEventListener('click', logout);

async function boot() {
  const session = await getSession();
  if (session.auth) {
    $('#logout').hidden = false;
    if (session.authenticated === false || (session.authenticated === undefined && !session.user && !(await authorized()))) {
      document.body.dataset.conn = 'closed';
      await showLogin();
    }
  }
  comms.start();
}

boot();
