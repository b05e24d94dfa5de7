// Notifications in the top centre: info, success, warning, error; optional
// action buttons; errors and notifications with actions stay until closed.

import { h, $ } from './dom.js';

const DEFAULT_TIMEOUT = { success: 3000, info: 4000, warning: 8000, error: 0 };

/**
 * Shows a notification.
 * @param {string|Node} message text or content
 * @param {{type?: 'info'|'success'|'warning'|'error', timeout?: number, actions?: {label: string, fn: () => void, primary?: boolean}[], id?: string}} [opts]
 * @returns {{close: () => void, el: HTMLElement}}
 */
export function notify(message, opts = {}) {
  const type = opts.type || 'info';
  const root = $('#notify');
  if (opts.id) root.querySelector(`.notification[data-key="${CSS.escape(opts.id)}"]`)?.remove();
  let timer = null;
  const close = () => {
    clearTimeout(timer);
    el.classList.add('closing');
    setTimeout(() => el.remove(), 150);
  };
  const actions = (opts.actions || []).map((a) =>
    h('button', {
      type: 'button',
      class: a.primary ? 'primary' : '',
      text: a.label,
      on: {
        click: () => {
          close();
          a.fn();
        },
      },
    }),
  );
  const el = h(
    'div',
    { class: ['notification', type], role: type === 'error' ? 'alert' : 'status', 'data-key': opts.id },
    h('div', { class: 'notification-body' }, message),
    actions.length ? h('div', { class: 'notification-actions' }, actions) : null,
    h('button', { type: 'button', class: 'notification-close', title: 'Close', 'aria-label': 'Close', text: '×', on: { click: close } }),
  );
  root.append(el);
  while (root.children.length > 6) root.firstElementChild.remove();
  const timeout = opts.timeout ?? (actions.length ? 0 : DEFAULT_TIMEOUT[type]);
  if (timeout > 0) timer = setTimeout(close, timeout);
  return { close, el };
}

/** A list of validation problems as notification content. */
export function problemList(title, problems, nameOf) {
  const shown = problems.slice(0, 8);
  return h(
    'div',
    null,
    h('strong', { text: title }),
    h(
      'ul',
      { class: 'problem-list' },
      shown.map((p) => h('li', null, h('span', { class: 'problem-node', text: nameOf(p) }), ' ', p.field ? [h('code', { text: p.field }), ': '] : null, p.message)),
    ),
    problems.length > shown.length ? h('div', { class: 'problem-more', text: `… and ${problems.length - shown.length} more` }) : null,
  );
}
