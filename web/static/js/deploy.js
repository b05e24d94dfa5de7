// Deploy: validate, then send the flow with the revision it was loaded at
// ("modified nodes" or "full"). A stale revision is never overwritten: the
// user is told someone else deployed and may reload. Deploys by other
// editors reload this one when it has no changes, and warn when it has.

import { $ } from './dom.js';
import { notify, problemList } from './notify.js';
import { hasErrors } from './problems.js';
import { secretFields } from './types.js';

const ENV_REF = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
const SECRET = '__SECRET__';

/** The flow as the server keeps it for the browser: literal secrets replaced by the placeholder. */
function redact(flows) {
  return flows.map((n) => {
    const fields = secretFields(n.type).filter((f) => typeof n[f] === 'string' && n[f] !== '' && n[f] !== SECRET && !ENV_REF.test(n[f]));
    if (!fields.length) return n;
    const c = { ...n };
    for (const f of fields) c[f] = SECRET;
    return c;
  });
}

export function createDeploy({ model, comms, problems, reload, nameOf }) {
  const button = $('#deploy');
  const mode = $('#deploy-mode');
  const ours = new Set();
  let busy = false;
  let foreign = null;

  function update() {
    const dirty = model.isDirty();
    button.classList.toggle('changed', dirty);
    button.classList.toggle('busy', busy);
    button.title = dirty ? 'Deploy the changes (Ctrl+D)' : 'Nothing changed since the last deploy (Ctrl+D)';
  }

  function showProblems(list) {
    problems.set(list);
    const errors = list.filter((p) => p.severity !== 'warning');
    notify(problemList(`Not deployed: the flow has ${errors.length} problem${errors.length === 1 ? '' : 's'}`, errors, nameOf), { type: 'error', id: 'deploy-result' });
  }

  function conflict() {
    document.querySelector('#notify .notification[data-key="remote-deploy"]')?.remove();
    notify('Someone else deployed the flow after you loaded it. Deploying now would overwrite their changes, so nothing was deployed. Reload to get their flow (your undeployed changes are discarded), or export your changes first.', {
      type: 'error',
      id: 'deploy-result',
      actions: [
        { label: 'Reload', primary: true, fn: () => reload({ reason: 'conflict' }) },
        { label: 'Keep editing', fn: () => {} },
      ],
    });
  }

  async function deploy() {
    if (busy) return;
    if (comms.state !== 'open') {
      notify('Not connected to the server: nothing was deployed.', { type: 'error', id: 'deploy-result' });
      return;
    }
    const m = mode.value === 'full' ? 'full' : 'nodes';
    if (m === 'nodes' && !model.isDirty()) {
      notify('No changes to deploy.', { type: 'info', id: 'deploy-result' });
      return;
    }
    busy = true;
    update();
    const flows = model.toFlows();
    try {
      const list = await problems.validate(flows);
      if (hasErrors(list)) {
        showProblems(list);
        return;
      }
      problems.set(list);
      const res = await comms.request('deploy', { flows, rev: model.rev, mode: m }, 60000);
      ours.add(res.rev);
      if (ours.size > 20) ours.delete(ours.values().next().value);
      model.markDeployed(res.rev, flows, redact(flows));
      notify(m === 'full' ? 'Deployed the whole flow.' : 'Deployed the changes.', { type: 'success', id: 'deploy-result' });
    } catch (err) {
      if (err.code === 'conflict') conflict();
      else if (err.code === 'invalid') showProblems(err.problems || []);
      else notify(`Deploy failed: ${err.message}`, { type: 'error', id: 'deploy-result' });
    } finally {
      busy = false;
      update();
      if (foreign) {
        const rev = foreign;
        foreign = null;
        onDeployEvent(rev);
      }
    }
  }

  function onDeployEvent(rev) {
    if (!rev || rev === model.rev || ours.has(rev)) return;
    if (busy) {
      foreign = rev;
      return;
    }
    if (!model.isDirty()) {
      reload({ reason: 'remote' });
      return;
    }
    notify('Someone else deployed the flow. Your changes are not deployed yet; deploying them will be refused until you reload (which discards them).', {
      type: 'warning',
      id: 'remote-deploy',
      actions: [
        { label: 'Reload', primary: true, fn: () => reload({ reason: 'remote' }) },
        { label: 'Keep editing', fn: () => {} },
      ],
    });
  }

  button.addEventListener('click', deploy);
  model.on('change', update);
  comms.subscribe('deploy', (ev) => onDeployEvent(ev.data?.rev));
  update();

  return { deploy, onDeployEvent };
}
