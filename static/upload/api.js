/**
 * Calls to ossgate's own API (/api/sts-token, /api/post-policy, /api/uploads, …): the bearer
 * token, a request that gets no answer, and an error answer, each as an OssgateError.
 */

import { OssgateError } from './errors.js';

/**
 * Where the bearer token comes from (a function of the host application).
 * @typedef {() => (string | null | undefined | Promise<string | null | undefined>)} TokenSource
 */

/**
 * The user's bearer token, or a `session` error (code `not_signed_in`) when there is none.
 * @param {TokenSource} getBearerToken
 * @param {number} [status]  the error's status, if it should have one
 * @returns {Promise<string>}
 */
export async function bearerToken(getBearerToken, status) {
  const token = await getBearerToken();
  if (!token) {
    throw new OssgateError('session', 'Not signed in.', { code: 'not_signed_in', status });
  }
  return token;
}

/**
 * `fetch(url, init)`; a request that gets no answer is a `network` error.
 * @param {typeof fetch} fetch
 * @param {string} url
 * @param {RequestInit} init
 */
export async function reach(fetch, url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    throw new OssgateError('network', 'The upload server cannot be reached.', {
      code: 'network', cause: err,
    });
  }
}

/**
 * ossgate's refusals of a destination (`error.destination` names it): 404 for a name it does
 * not have, 403 for one the caller's token claims do not admit. Both are `denied`: asking
 * again would only be refused again.
 */
const DESTINATION_REFUSALS = new Set(['unknown_destination', 'destination_forbidden']);

/**
 * The error of an ossgate API response (`{"error": {"code", "message"}}`), classified; a
 * `session` one (401) is also announced as a `session-expired` event on `events`. A refused
 * destination is `denied`, with its name in `detail.destination`.
 * @param {Response} response  not ok
 * @param {EventTarget} events
 */
export async function apiFailure(response, events) {
  let code = `http_${response.status}`;
  let message = response.statusText || code;
  /** @type {import('./errors.js').ErrorDetail} */
  const detail = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      if (typeof body.error.destination === 'string') detail.destination = body.error.destination;
    }
  } catch {
    // not JSON: keep the status line
  }
  const retryAfter = Number(response.headers.get('Retry-After')) || null;
  const status = response.status;
  const kind =
    status === 401 ? 'session'
    : status === 403 || DESTINATION_REFUSALS.has(code) ? 'denied'
    : status === 429 ? 'rate_limited'
    : status === 503 ? 'unavailable'
    : 'server';
  const error = new OssgateError(kind, message, { code, status, retryAfter, detail });
  if (error.kind === 'session') {
    events.dispatchEvent(new CustomEvent('session-expired', { detail: error }));
  }
  return error;
}
