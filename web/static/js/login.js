// Sign-in: GET /api/session says whether the server wants credentials;
// when the API answers 401, the #login form posts to /api/login (which
// sets a session cookie) and the editor connects.

import { $ } from './dom.js';

export async function getSession() {
  try {
    const res = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) return { auth: false };
    return await res.json();
  } catch {
    return { auth: false, offline: true };
  }
}

/** Whether the API accepts this browser's credentials (false on 401). */
export async function authorized() {
  try {
    const res = await fetch('/api/status', { credentials: 'same-origin', cache: 'no-store' });
    return res.status !== 401;
  } catch {
    return true;
  }
}

/** Shows the sign-in form; resolves once the server accepted a login. */
export function showLogin() {
  const screen = $('#login-screen');
  const form = $('#login');
  const err = form.querySelector('.login-error');
  const ok = $('#login-ok');
  screen.hidden = false;
  document.body.classList.add('login-open');
  err.hidden = true;
  form.querySelector('[name=user]').focus();
  return new Promise((resolve) => {
    const submit = async (e) => {
      e.preventDefault();
      const user = form.querySelector('[name=user]').value.trim();
      const password = form.querySelector('[name=password]').value;
      const token = form.querySelector('[name=token]').value.trim();
      const body = token ? { token } : { user, password };
      if (!token && !user) {
        err.textContent = 'Enter a user and password, or an access token.';
        err.hidden = false;
        return;
      }
      ok.disabled = true;
      try {
        const res = await fetch('/api/login', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (res.ok) {
          form.removeEventListener('submit', submit);
          form.reset();
          screen.hidden = true;
          document.body.classList.remove('login-open');
          resolve();
          return;
        }
        err.textContent =
          res.status === 401 ? 'Those credentials were not accepted.' : res.status === 429 ? 'Too many failed attempts: wait a minute, then try again.' : `Sign-in failed (HTTP ${res.status}).`;
        err.hidden = false;
      } catch {
        err.textContent = 'The server cannot be reached.';
        err.hidden = false;
      } finally {
        ok.disabled = false;
      }
    };
    form.addEventListener('submit', submit);
  });
}

export async function logout() {
  try {
    await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
  } finally {
    location.reload();
  }
}
