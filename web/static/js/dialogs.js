// A confirmation dialog (#confirm-dialog) that answers a promise.

import { $ } from './dom.js';

export function confirmDialog(title, text, okLabel = 'OK') {
  const dlg = $('#confirm-dialog');
  dlg.querySelector('.confirm-title').textContent = title;
  dlg.querySelector('.confirm-text').textContent = text;
  const ok = $('#confirm-ok');
  const cancel = $('#confirm-cancel');
  ok.textContent = okLabel;
  return new Promise((resolve) => {
    const done = (v) => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dlg.removeEventListener('close', onClose);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onOk = () => done(true);
    const onCancel = () => done(false);
    const onClose = () => done(false);
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    ok.focus();
  });
}
