/**
 * The one error type of ossgate-upload.js, and how whatever ali-oss, the transport or fetch
 * threw becomes one.
 */

import { ossOrigin } from './oss.js';

/** @import { Grant } from './credentials.js' */

/**
 * What went wrong, as the user can act on it. `rejected`: the upload reached OSS, but it broke
 * a rule of its destination, so ossgate removed it (the verdict's `reason` is the code).
 * @typedef {'cors' | 'network' | 'session' | 'denied' | 'credentials' | 'limits'
 *   | 'rejected' | 'unconfirmed' | 'cancelled' | 'rate_limited' | 'unavailable' | 'server'
 * } ErrorKind
 */

/**
 * More about some failures: a `limits` error's size, limit, type and allowed types; a
 * refusal of /api/post-policy's own code (`serverCode`); a `cors` error's page origin; a
 * `rejected` error's reason (`too_large`, `type_not_allowed`, `overwrite_forbidden`); the
 * destination a `denied` error refused (`unknown_destination`, `destination_forbidden`) or a
 * `limits` error's limits came from.
 * @typedef {object} ErrorDetail
 * @property {number} [size]
 * @property {number | null} [maxBytes]
 * @property {string} [contentType]
 * @property {string[] | null} [allowed]
 * @property {string} [serverCode]
 * @property {string} [origin]
 * @property {string} [reason]
 * @property {string | null} [destination]
 */

/**
 * @typedef {object} ErrorInfo
 * @property {string | null} [code]  defaults to the kind
 * @property {number | null} [status]
 * @property {string | null} [requestId]
 * @property {number | null} [retryAfter]
 * @property {ErrorDetail} [detail]
 * @property {unknown} [cause]
 */

/** A failure the user can act on; `kind` says which, `code`/`status` say what OSS or ossgate said. */
export class OssgateError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   * @param {ErrorInfo} [info]
   */
  constructor(kind, message, info = {}) {
    super(message);
    this.name = 'OssgateError';
    /** @type {ErrorKind} */
    this.kind = kind;
    /** @type {string} */
    this.code = info.code || kind;
    /** The HTTP status of the answer, when there was one. @type {number | null} */
    this.status = info.status ?? null;
    /** @type {string | null} */
    this.requestId = info.requestId || null;
    /** Seconds to wait before trying again (Retry-After), if said. @type {number | null} */
    this.retryAfter = info.retryAfter ?? null;
    /** @type {ErrorDetail} */
    this.detail = info.detail || {};
    if (info.cause !== undefined) this.cause = info.cause;
  }
}

/**
 * `{code, message, requestId}` of OSS's XML `<Error>` answer (nulls when it is not one).
 * @param {string | null | undefined} text
 * @returns {{code: string | null, message: string | null, requestId: string | null}}
 */
export function ossErrorOf(text) {
  const none = { code: null, message: null, requestId: null };
  if (!text || typeof DOMParser === 'undefined') return none;
  try {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    /** @param {string} tag */
    const pick = (tag) => {
      const node = doc.getElementsByTagName(tag)[0];
      return node ? node.textContent : null;
    };
    return { code: pick('Code'), message: pick('Message'), requestId: pick('RequestId') };
  } catch {
    return none;
  }
}

/** OSS error codes that mean "these credentials are no good", not "you may not". */
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SecurityTokenExpired',
  'InvalidSecurityToken',
  'AccessKeyIdAndSecurityTokenNotMatch',
]);

/**
 * What an error thrown by ali-oss, XhrTransport or a form upload may carry; `ossOrigin` is
 * where a form was posted (the grant may not know that origin).
 * @typedef {object} RawError
 * @property {string} [name]
 * @property {string} [message]
 * @property {string} [code]
 * @property {number} [status]
 * @property {string} [requestId]
 * @property {string} [ossOrigin]
 */

/**
 * Turn whatever ali-oss or fetch threw into an OssgateError with a kind. A request without a
 * readable answer is told apart as `cors` or `network` by probing the OSS origin with `fetch`.
 * @param {unknown} err
 * @param {{fetch: typeof fetch, grant: Grant | null}} context
 * @returns {Promise<OssgateError>}
 */
export async function classify(err, { fetch, grant }) {
  if (err instanceof OssgateError) return err;
  const e = /** @type {RawError} */ (err || {});
  const info = { code: e.code, status: e.status, requestId: e.requestId, cause: err };
  const origin = e.ossOrigin || null;
  if (e.name === 'cancel') return new OssgateError('cancelled', 'Cancelled.', info);
  if (e.name === 'abort' || e.code === 'NoSuchUpload') {
    return new OssgateError('server', 'The multipart upload no longer exists.',
      { ...info, code: 'upload_gone' });
  }
  if (e.status === 203 && e.code === 'CallbackFailed') {
    return new OssgateError('unconfirmed', e.message || 'Stored, but the callback failed.', info);
  }
  if (typeof e.message === 'string' && e.message.includes('expose-headers')) {
    // ali-oss: "Please set the etag of expose-headers in OSS" (multipart without ETag)
    return new OssgateError('cors', 'The bucket CORS rule does not expose the ETag header.',
      { ...info, code: 'cors_expose_etag' });
  }
  if (e.status === -1 || e.status === -2 || e.code === 'RequestError'
      || e.code === 'ConnectionTimeoutError' || e.code === 'ResponseTimeoutError') {
    return requestFailure(info, origin || (grant ? ossOrigin(grant) : null), fetch);
  }
  if (e.code && CREDENTIAL_CODES.has(e.code)) {
    return new OssgateError('credentials', e.message || e.code, info);
  }
  if (e.status === 403) return new OssgateError('denied', e.message || 'Access denied.', info);
  if (e.status !== undefined && e.status >= 500) {
    return new OssgateError('unavailable', e.message || 'OSS error.', info);
  }
  return new OssgateError('server', e.message || String(err), info);
}

/**
 * A request that got no readable answer: the network, or CORS (the browser hides which).
 * Ask the OSS origin twice: a CORS-mode GET that can be read means CORS works (so it was
 * the network); otherwise an opaque no-cors GET that arrives means the server is there and
 * only CORS is missing.
 * @param {ErrorInfo} info
 * @param {string | null} origin
 * @param {typeof fetch} fetch
 */
async function requestFailure(info, origin, fetch) {
  const offline = globalThis.navigator && globalThis.navigator.onLine === false;
  if (!offline && origin) {
    /** @param {RequestMode} mode */
    const probe = (mode) => fetch(`${origin}/`, {
      mode, cache: 'no-store', credentials: 'omit',
    }).then(() => true, () => false);
    if (!(await probe('cors')) && (await probe('no-cors'))) {
      return new OssgateError('cors', 'The bucket has no CORS rule for this page.',
        { ...info, code: 'cors', detail: { origin: globalThis.location && location.origin } });
    }
  }
  return new OssgateError('network', 'The network connection was lost.',
    { ...info, code: 'network' });
}

/**
 * The `rejected` error of a verdict (`{"status": "rejected", "reason", "message"}`): the
 * server's message as it is (it says which rule broke and that the file was removed), the
 * reason as the code and in the detail.
 * @param {{reason?: unknown, message?: unknown}} answer
 */
export function rejectionError(answer) {
  const reason = typeof answer.reason === 'string' && answer.reason ? answer.reason : 'rejected';
  const message = typeof answer.message === 'string' && answer.message
    ? answer.message : 'The upload was rejected and removed.';
  return new OssgateError('rejected', message, { code: reason, detail: { reason } });
}
