/**
 * ossgate-upload.js: browser uploads straight to Alibaba Cloud OSS through an ossgate server.
 *
 * A plain ES module with no page code, so any frontend can import it. It needs the ali-oss
 * browser bundle (window.OSS, or pass `OSS`) and a way to get the user's bearer token:
 *
 *   import { Uploader } from '/static/ossgate-upload.js';
 *   const uploader = new Uploader({ getBearerToken: () => myApp.token });
 *   const [upload] = uploader.add([file]);
 *   upload.addEventListener('change', () => render(upload));  // status, progress, speed
 *   const outcome = await upload.done;                         // the Upload itself
 *
 * What it takes care of:
 * - Credentials: POST /api/sts-token with the bearer token (never in a URL). The answer goes to
 *   ali-oss as is; `refreshSTSToken` fetches a new one on ali-oss's timer, with an interval
 *   below the credential lifetime. ali-oss stamps its refresh time *before* the new token
 *   arrives, so concurrent requests can go out with the old, expired one (a known ali-oss
 *   race). Every request therefore first awaits `CredentialSource.ensureFresh()`: credentials
 *   that expire within `refreshMarginMs` are replaced before use, and all refreshes go through
 *   one in-flight request (single flight), however many uploads ask at once.
 * - The callback parameters of the token answer go into every upload, so the server records
 *   it; the callback's JSON (with its `recordId`) becomes `upload.result.data`. A 203
 *   `CallbackFailed` means "stored, not confirmed": status `unconfirmed`, neither done nor failed.
 * - Files from `multipartThreshold` bytes up use `multipartUpload` with `parallel` parts; its
 *   checkpoint is kept in localStorage after every part, so a reloaded page that is given the
 *   same file again resumes instead of starting over. Smaller files use one `put`.
 * - Limits of the token answer (`maxBytes`, `contentTypes`) are checked before any request to
 *   OSS; the server's session policy and callback still rule.
 * - Bytes go out as slices of the File through XhrTransport (ali-oss's `urllib` option): fast,
 *   with byte-level progress and speed, and cancellable at once (requests in flight abort).
 * - Form uploads (PostObject), when the server should decide exactly what is uploaded: for
 *   each file, POST /api/post-policy `{filename, size, contentType}` answers `{url, fields,
 *   key, expiresAt}`, a V4-signed policy that pins the key (chosen by the server), the size,
 *   the type and the callback; every field then goes into a FormData unchanged, the file
 *   last, posted to `url` with one XMLHttpRequest (progress, cancel). One request per file,
 *   so no resume; a policy lives about 10 minutes, so one is requested per file and attempt.
 *   No STS credentials are needed for it.
 * - Which path a file takes (`Upload.mode`: put, multipart or form) follows the `mode`
 *   option, read when the file is added: `sts` (credentials: put, or multipart from
 *   `multipartThreshold`), `form` (every non-empty file as a form), or `auto` (the default:
 *   a form for the files `formUpload` / `formUploadTypes` select, credentials otherwise).
 * - Errors are classified (`OssgateError.kind`): cors, network, session, denied, credentials,
 *   limits, unconfirmed, cancelled, rate_limited, unavailable, server.
 *
 * Upload statuses: queued, uploading, done, unconfirmed, error, cancelled.
 */

const MiB = 1024 * 1024;

/** @type {Readonly<Record<string, string>>} */
export const Status = Object.freeze({
  QUEUED: 'queued',
  UPLOADING: 'uploading',
  DONE: 'done',
  UNCONFIRMED: 'unconfirmed', // 203 CallbackFailed: the object is stored, the app was not told
  ERROR: 'error',
  CANCELLED: 'cancelled',
});

/** The `mode` option: how files are sent (see the module comment). */
export const Mode = Object.freeze({
  AUTO: 'auto', // a form for the files formUpload/formUploadTypes select, else STS
  STS: 'sts', // the browser signs with STS credentials: put, or multipart from the threshold
  FORM: 'form', // a server-signed PostObject form for every file
});

const MODES = new Set(Object.values(Mode));

export const DEFAULTS = Object.freeze({
  tokenUrl: '/api/sts-token',
  uploadsUrl: '/api/uploads',
  postPolicyUrl: '/api/post-policy',
  /** How files are sent: Mode.AUTO, Mode.STS or Mode.FORM; see also setMode(). */
  mode: Mode.AUTO,
  /**
   * In auto mode, which files go as forms: `true` for every file below multipartThreshold,
   * or a predicate `(file) => boolean` (which decides alone, whatever the size).
   */
  formUpload: false,
  /** In auto mode, files below multipartThreshold of these types (`image/*`) go as forms. */
  formUploadTypes: null,
  /** Files of at least this many bytes go through multipartUpload (resumable). */
  multipartThreshold: 16 * MiB,
  /** Multipart part size; OSS's minimum is 100 KB (ali-oss refuses smaller). */
  partSize: 8 * MiB,
  /** Parts in flight per file. */
  parallel: 4,
  /** Files uploading at once; the rest wait as `queued`. */
  concurrentFiles: 3,
  /** ali-oss refreshSTSTokenInterval; capped at half the credential lifetime. */
  refreshIntervalMs: 5 * 60 * 1000,
  /** Credentials expiring sooner than this are refreshed before a request uses them. */
  refreshMarginMs: 2 * 60 * 1000,
  /** A request fails when it makes no progress (no byte sent, no answer) for this long. */
  timeoutMs: 60 * 1000,
  /** localStorage key prefix of multipart checkpoints. */
  checkpointPrefix: 'ossgate.checkpoint.v1:',
});

/** ali-oss's minimum part size (lib/browser/managed-upload.js). */
const MIN_PART_SIZE = 100 * 1024;

/** OSS error codes that mean "these credentials are no good", not "you may not". */
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SecurityTokenExpired',
  'InvalidSecurityToken',
  'AccessKeyIdAndSecurityTokenNotMatch',
]);

/** A failure the user can act on; `kind` says which, `code`/`status` say what OSS or ossgate said. */
export class OssgateError extends Error {
  /**
   * @param {string} kind
   * @param {string} message
   * @param {{code?: string, status?: number, requestId?: string, retryAfter?: number,
   *          detail?: object, cause?: unknown}} [info]
   */
  constructor(kind, message, info = {}) {
    super(message);
    this.name = 'OssgateError';
    this.kind = kind;
    this.code = info.code || kind;
    this.status = info.status ?? null;
    this.requestId = info.requestId || null;
    this.retryAfter = info.retryAfter ?? null;
    this.detail = info.detail || {};
    if (info.cause !== undefined) this.cause = info.cause;
  }
}

/**
 * The error of an ossgate API response (`{"error": {"code", "message"}}`), classified.
 * @param {Response} response
 */
async function apiError(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || code;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  const retryAfter = Number(response.headers.get('Retry-After')) || null;
  const status = response.status;
  const kind =
    status === 401 ? 'session'
    : status === 403 ? 'denied'
    : status === 429 ? 'rate_limited'
    : status === 503 ? 'unavailable'
    : 'server';
  return new OssgateError(kind, message, { code, status, retryAfter });
}

/** The three keys ali-oss's refreshSTSToken must return (nothing else: it merges them in). */
function stsKeys(grant) {
  return {
    accessKeyId: grant.accessKeyId,
    accessKeySecret: grant.accessKeySecret,
    stsToken: grant.stsToken,
  };
}

function isIPv4OrIPv6(host) {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[');
}

/**
 * The origin ali-oss sends a grant's uploads to (its getReqUrl): the bucket in front of the
 * endpoint host unless that host is an IP address; the region's https endpoint without one.
 */
export function ossOrigin(grant) {
  if (!grant.endpoint) {
    const scheme = grant.secure === false ? 'http' : 'https';
    return `${scheme}://${grant.bucket}.${grant.region}.aliyuncs.com`;
  }
  const url = new URL(grant.endpoint.includes('://') ? grant.endpoint
    : `${grant.secure ? 'https' : 'http'}://${grant.endpoint}`);
  return isIPv4OrIPv6(url.hostname) ? url.origin : `${url.protocol}//${grant.bucket}.${url.host}`;
}

/** Whether `contentType` matches one of `allowed` (`image/*`, `*\/*`, `application/pdf`). */
export function typeAllowed(contentType, allowed) {
  if (!allowed || allowed.length === 0) return true;
  const [main, sub] = contentType.split(';')[0].trim().toLowerCase().split('/');
  if (!main || !sub) return false;
  return allowed.some((pattern) => {
    const [pMain, pSub] = pattern.toLowerCase().split('/');
    return (pMain === '*' || pMain === main) && (pSub === '*' || pSub === sub);
  });
}

/** The content type an upload declares: the file's own, else application/octet-stream. */
export function contentTypeOf(file) {
  return file.type || 'application/octet-stream';
}

/**
 * The limit a file breaks, as an OssgateError of kind `limits`, or null when it fits.
 * @param {File|Blob} file
 * @param {{maxBytes?: number, contentTypes?: string[]}} limits
 */
export function checkLimits(file, limits) {
  if (!limits) return null;
  if (typeof limits.maxBytes === 'number' && file.size > limits.maxBytes) {
    return new OssgateError('limits', `The file is larger than the ${limits.maxBytes}-byte limit.`, {
      code: 'too_large',
      detail: { maxBytes: limits.maxBytes, size: file.size },
    });
  }
  const type = contentTypeOf(file);
  if (!typeAllowed(type, limits.contentTypes)) {
    return new OssgateError('limits', `Files of type ${type} are not accepted.`, {
      code: 'type_not_allowed',
      detail: { contentType: type, allowed: limits.contentTypes },
    });
  }
  return null;
}

/**
 * Why a file cannot go as a form, or null: a PostObject policy allows 1 byte at least (its
 * content-length-range), so an empty file has no policy.
 */
function formRefusal(file) {
  if (file.size > 0) return null;
  return new OssgateError('limits', 'An empty file cannot be sent as a form upload.', {
    code: 'empty_file', detail: { size: 0 },
  });
}

/**
 * The refusal of /api/post-policy as a `limits` error when it is about the file (413: too
 * large, 415: type not allowed), so it reads like the same refusal made in the browser.
 * @param {OssgateError} error  from apiError
 */
function policyRefusal(error, file, limits) {
  const info = { status: error.status, detail: { serverCode: error.code } };
  if (error.status === 413) {
    return new OssgateError('limits', error.message, {
      ...info,
      code: 'too_large',
      detail: { ...info.detail, size: file.size, maxBytes: (limits && limits.maxBytes) ?? null },
    });
  }
  if (error.status === 415 && error.code === 'unsupported_content_type') {
    return new OssgateError('limits', error.message, {
      ...info,
      code: 'type_not_allowed',
      detail: { ...info.detail, contentType: contentTypeOf(file), allowed: null },
    });
  }
  return error;
}

/** `{code, message, requestId}` of OSS's XML `<Error>` answer (nulls when it is not one). */
export function ossErrorOf(text) {
  const none = { code: null, message: null, requestId: null };
  if (!text || typeof DOMParser === 'undefined') return none;
  try {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    const pick = (tag) => {
      const node = doc.getElementsByTagName(tag)[0];
      return node ? node.textContent : null;
    };
    return { code: pick('Code'), message: pick('Message'), requestId: pick('RequestId') };
  } catch {
    return none;
  }
}

function jsonOrNull(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A key under the user's prefix that keeps the file name last and never collides. */
export function defaultKeyFor(file, grant) {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) =>
    b.toString(16).padStart(2, '0')).join('');
  // eslint-disable-next-line no-control-regex
  const name = (file.name || 'file').replace(/[\u0000-\u001f\u007f/\\]/g, '_').slice(-200);
  return `${grant.prefix}${random}/${name}`;
}

/** Request headers a page may not set (Fetch standard); ali-oss adds Host for IP endpoints. */
const FORBIDDEN_HEADERS = new Set([
  'accept-charset', 'accept-encoding', 'connection', 'content-length', 'cookie', 'date',
  'expect', 'host', 'keep-alive', 'origin', 'referer', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'user-agent', 'via',
]);

function parseHeaders(raw) {
  const headers = {};
  for (const line of raw.trim().split(/[\r\n]+/)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return headers;
}

/**
 * The HTTP client ali-oss uses for our uploads (its `urllib` option: `request(url, params)`
 * answering `{status, headers, data, res}`), built on XMLHttpRequest so that:
 * - a part or a put is sent as a slice of the File (a Blob), which Chromium streams from
 *   disk; ali-oss's own client copies every part into an ArrayBuffer first, which Chromium
 *   uploads an order of magnitude slower (64 MiB: 0.2 s as Blobs, 3 to 16 s as ArrayBuffers);
 * - upload progress is reported byte by byte (`onProgress(request, loaded)`), not per part;
 * - requests in flight can be aborted, so a cancel is immediate, even for a single put.
 * Failures look like ali-oss's own: name RequestError / status -1 for a network or CORS
 * failure, ResponseTimeoutError / -2 for a timeout.
 */
export class XhrTransport {
  constructor({ onProgress = null } = {}) {
    this.onProgress = onProgress;
    this.inflight = new Set();
  }

  request(url, params) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const started = Date.now();
      xhr.open(params.method, url);
      for (const [name, value] of Object.entries(params.headers || {})) {
        if (value !== undefined && value !== null && !FORBIDDEN_HEADERS.has(name.toLowerCase())) {
          xhr.setRequestHeader(name, String(value));
        }
      }
      xhr.responseType = 'text';
      // An idle timeout, not a total one: a large part on a slow link is fine while it moves.
      const idle = params.timeout || 0;
      let watchdog = null;
      let timedOut = false;
      const kick = () => {
        if (!idle) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          timedOut = true;
          xhr.abort();
        }, idle);
      };
      xhr.upload.onprogress = (event) => {
        kick();
        if (this.onProgress) this.onProgress(xhr, event.loaded);
      };
      xhr.onprogress = kick;
      const settle = () => {
        clearTimeout(watchdog);
        this.inflight.delete(xhr);
        if (this.onProgress) this.onProgress(xhr, null);
      };
      const fail = (name, status, message) => {
        settle();
        const error = new Error(`${message}, ${params.method} ${url}`);
        error.name = name;
        error.status = status;
        error.code = name;
        error.requestUrls = [url];
        reject(error);
      };
      xhr.onload = () => {
        settle();
        const headers = parseHeaders(xhr.getAllResponseHeaders());
        const data = xhr.responseText;
        const res = {
          status: xhr.status, statusCode: xhr.status, headers, data,
          size: data.length, rt: Date.now() - started, requestUrls: [url],
        };
        resolve({ status: xhr.status, headers, data, res });
      };
      xhr.onerror = () => fail('RequestError', -1, 'XHR error (network or CORS)');
      xhr.onabort = () => (timedOut
        ? fail('ResponseTimeoutError', -2, `no progress for ${idle} ms`)
        : fail('RequestError', -1, 'aborted'));
      this.inflight.add(xhr);
      kick();
      const body = params.content ?? null;
      xhr.send(params.method === 'GET' || params.method === 'HEAD' ? null : body);
    });
  }

  abortAll() {
    for (const xhr of [...this.inflight]) xhr.abort();
  }
}

/**
 * Short-lived upload credentials from ossgate, shared by every upload of an Uploader.
 *
 * `grant` is the last /api/sts-token answer; `expiresAt` its expiry on *this* browser's clock
 * (from the lifetime the server stated, so a skewed local clock does not matter).
 */
export class CredentialSource extends EventTarget {
  constructor({ tokenUrl, getBearerToken, fetch, refreshMarginMs, refreshIntervalMs }) {
    super();
    this.tokenUrl = tokenUrl;
    this.getBearerToken = getBearerToken;
    this.fetch = fetch;
    this.refreshMarginMs = refreshMarginMs;
    this.refreshIntervalMs = refreshIntervalMs;
    this.grant = null;
    this.fetchedAt = 0;
    this.expiresAt = 0;
    this.fetches = 0;
    this._inflight = null;
  }

  /** Current credentials, fetched or refreshed first when missing or about to expire. */
  async current() {
    await this.ensureFresh();
    return this.grant;
  }

  /** Refresh before use when the credentials expire within `refreshMarginMs` (race guard). */
  async ensureFresh() {
    if (this._inflight) {
      await this._inflight;
      return;
    }
    if (!this.grant || this.expiresAt - Date.now() < this.refreshMarginMs) {
      await this.refresh();
    }
  }

  /** Fetch new credentials; concurrent callers share one request. */
  refresh() {
    if (!this._inflight) {
      this._inflight = this._fetch().finally(() => {
        this._inflight = null;
      });
    }
    return this._inflight;
  }

  /** ali-oss's refreshSTSTokenInterval: the configured one, below half the lifetime. */
  interval() {
    const lifetime = this.expiresAt - this.fetchedAt;
    return Math.max(1000, Math.min(this.refreshIntervalMs, lifetime > 0 ? lifetime / 2 : Infinity));
  }

  async _fetch() {
    const token = await this.getBearerToken();
    if (!token) {
      throw new OssgateError('session', 'Not signed in.', { code: 'not_signed_in', status: 401 });
    }
    let response;
    try {
      response = await this.fetch(this.tokenUrl, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (err) {
      throw new OssgateError('network', 'The upload server cannot be reached.', {
        code: 'network', cause: err,
      });
    }
    this.fetches += 1;
    if (!response.ok) {
      const error = await apiError(response);
      if (error.kind === 'session') {
        this.dispatchEvent(new CustomEvent('session-expired', { detail: error }));
      }
      throw error;
    }
    const grant = await response.json();
    const now = Date.now();
    const serverNow = Date.parse(response.headers.get('Date') || '');
    const expiration = Date.parse(grant.expiration);
    const lifetime = Number.isFinite(serverNow) ? expiration - serverNow : expiration - now;
    this.grant = grant;
    this.fetchedAt = now;
    this.expiresAt = now + lifetime;
    this.dispatchEvent(new CustomEvent('refresh', { detail: grant }));
    return grant;
  }
}

/** Multipart checkpoints in localStorage, per user prefix and file (name, size, mtime). */
class CheckpointStore {
  constructor(storage, prefix) {
    this.storage = storage;
    this.prefix = prefix;
  }

  static fingerprint(file) {
    return JSON.stringify([file.name, file.size, file.lastModified || 0]);
  }

  _key(userPrefix, file) {
    return `${this.prefix}${userPrefix}:${CheckpointStore.fingerprint(file)}`;
  }

  load(userPrefix, file) {
    if (!this.storage) return null;
    try {
      const saved = JSON.parse(this.storage.getItem(this._key(userPrefix, file)) || 'null');
      if (saved && saved.fileSize === file.size && saved.uploadId && saved.key) return saved;
    } catch {
      // a corrupt entry is as good as none
    }
    return null;
  }

  /** What is kept of an ali-oss checkpoint: everything but the File itself. */
  static entry(file, checkpoint) {
    return {
      v: 1,
      key: checkpoint.name,
      uploadId: checkpoint.uploadId,
      partSize: checkpoint.partSize,
      fileSize: checkpoint.fileSize,
      doneParts: checkpoint.doneParts.map((p) => ({ number: p.number, etag: p.etag })),
      fileName: file.name,
      lastModified: file.lastModified || 0,
      savedAt: new Date().toISOString(),
    };
  }

  save(userPrefix, file, checkpoint) {
    if (!this.storage) return;
    const entry = CheckpointStore.entry(file, checkpoint);
    try {
      this.storage.setItem(this._key(userPrefix, file), JSON.stringify(entry));
    } catch {
      // storage full or disabled: the upload still works, it just cannot resume
    }
  }

  clear(userPrefix, file) {
    if (this.storage) this.storage.removeItem(this._key(userPrefix, file));
  }

  /** Every saved checkpoint of one user: [{storageKey, fileName, fileSize, doneParts, …}]. */
  list(userPrefix) {
    if (!this.storage) return [];
    const head = `${this.prefix}${userPrefix}:`;
    const entries = [];
    for (let i = 0; i < this.storage.length; i += 1) {
      const storageKey = this.storage.key(i);
      if (!storageKey || !storageKey.startsWith(head)) continue;
      try {
        entries.push({ storageKey, ...JSON.parse(this.storage.getItem(storageKey)) });
      } catch {
        // skip corrupt entries
      }
    }
    return entries;
  }

  remove(storageKey) {
    if (this.storage) this.storage.removeItem(storageKey);
  }
}

let uploadSequence = 0;

/**
 * One file on its way to OSS. Listen for `change` (status, progress, speed, error); `done`
 * resolves (never rejects) with this Upload once it settles as done, unconfirmed, error or
 * cancelled.
 */
export class Upload extends EventTarget {
  constructor(uploader, file) {
    super();
    uploadSequence += 1;
    this.id = `upload-${uploadSequence}`;
    this.uploader = uploader;
    this.file = file;
    this.key = null;
    this.status = Status.QUEUED;
    /** put, multipart or form: chosen when the file is added, kept by retries. */
    this.mode = uploader.pathFor(file);
    this.fraction = 0;
    this.bytesSent = 0;
    this.speed = 0; // bytes per second during the current attempt
    this.partsTotal = 0;
    this.partsDone = 0;
    this.resumedParts = 0; // parts a checkpoint said were already in OSS
    this.result = null; // {key, etag, data} on done
    this.error = null; // OssgateError on error / unconfirmed
    this._client = null;
    this._transport = null;
    this._checkpoint = null; // the last multipart checkpoint, for a retry without storage
    this._doneBytes = 0;
    this._inflightBytes = 0;
    this._attemptBase = 0;
    this._attemptStart = 0;
    this._lastEmit = 0;
    this._cancelRequested = false;
    this._settle = null;
    this.done = new Promise((resolve) => {
      this._settle = resolve;
    });
  }

  get cancellable() {
    return this.status === Status.QUEUED
      || (this.status === Status.UPLOADING && !this._cancelRequested);
  }

  /** Failed or cancelled; a file refused by the limits would only be refused again. */
  get retryable() {
    return (this.status === Status.ERROR && !(this.error && this.error.kind === 'limits'))
      || this.status === Status.CANCELLED;
  }

  /**
   * Stop now: requests in flight are aborted, no new part starts. A multipart upload keeps
   * its checkpoint (the parts finished before the cancel), so a retry or a reload resumes it.
   */
  cancel() {
    if (!this.cancellable) return false;
    this._cancelRequested = true;
    if (this.status === Status.QUEUED) {
      this._finish(Status.CANCELLED);
      return true;
    }
    if (this._client) this._client.cancel(); // ali-oss: start no more parts
    if (this._transport) this._transport.abortAll();
    this._emit();
    return true;
  }

  /** Queue again after an error or a cancel (multipart resumes from its checkpoint). */
  retry() {
    if (!this.retryable) return false;
    this.error = null;
    this._cancelRequested = false;
    this.done = new Promise((resolve) => {
      this._settle = resolve;
    });
    this._setStatus(Status.QUEUED);
    this.uploader._enqueue(this);
    return true;
  }

  _setStatus(status) {
    this.status = status;
    this._emit();
  }

  /** A new attempt starts with `doneBytes` already in OSS (parts of a checkpoint). */
  _startAttempt(doneBytes) {
    this._doneBytes = doneBytes;
    this._inflightBytes = 0;
    this._attemptBase = doneBytes;
    this._attemptStart = performance.now();
    this.bytesSent = doneBytes;
    this.fraction = this.file.size ? doneBytes / this.file.size : 0;
    this.speed = 0;
    this._emit();
  }

  /**
   * Bytes in OSS (finished parts) plus bytes of requests in flight; `change` at most every
   * 100 ms unless `force` (a part finished), so progress never floods the page.
   */
  _progress(force = false) {
    const size = this.file.size;
    this.bytesSent = Math.min(size, this._doneBytes + this._inflightBytes);
    this.fraction = Math.max(this.fraction, size ? this.bytesSent / size : 1);
    const seconds = (performance.now() - this._attemptStart) / 1000;
    this.speed = seconds > 0.05 ? (this.bytesSent - this._attemptBase) / seconds : 0;
    const now = performance.now();
    if (force || !this._lastEmit || now - this._lastEmit >= 100) {
      this._lastEmit = now;
      this._emit();
    }
  }

  _emit() {
    this.dispatchEvent(new CustomEvent('change', { detail: this }));
  }

  _finish(status, error = null) {
    this.status = status;
    this.error = error;
    this._client = null;
    this._transport = null;
    this._emit();
    this._settle(this);
  }
}

/** Uploads files with credentials from ossgate; see the module comment. */
export class Uploader extends EventTarget {
  /**
   * @param {object} options  `getBearerToken` (required: () => string | Promise<string>) and
   *   any of DEFAULTS, plus `OSS` (the ali-oss constructor, default window.OSS), `fetch`,
   *   `storage` (default localStorage; null disables resume), `keyFor(file, grant)`.
   *   `OSS` is not needed for form uploads.
   */
  constructor(options) {
    super();
    if (!options || typeof options.getBearerToken !== 'function') {
      throw new TypeError('Uploader needs getBearerToken: () => the bearer token');
    }
    this.options = {
      ...DEFAULTS,
      OSS: globalThis.OSS,
      fetch: globalThis.fetch.bind(globalThis),
      storage: globalThis.localStorage || null,
      keyFor: defaultKeyFor,
      ...options,
    };
    if (this.options.partSize < MIN_PART_SIZE) {
      throw new RangeError(`partSize must be at least ${MIN_PART_SIZE} bytes (OSS's minimum)`);
    }
    this.setMode(this.options.mode);
    const { formUpload, formUploadTypes } = this.options;
    if (typeof formUpload !== 'boolean' && typeof formUpload !== 'function') {
      throw new TypeError('formUpload must be true, false or a function (file) => boolean');
    }
    if (formUploadTypes !== null && !Array.isArray(formUploadTypes)) {
      throw new TypeError("formUploadTypes must be a list of types such as ['image/*']");
    }
    this.credentials = new CredentialSource(this.options);
    this.credentials.addEventListener('session-expired', (event) => {
      this.dispatchEvent(new CustomEvent('session-expired', { detail: event.detail }));
    });
    this.checkpoints = new CheckpointStore(this.options.storage, this.options.checkpointPrefix);
    this.uploads = [];
    this._queue = [];
    this._running = 0;
  }

  /** The current grant (credentials, prefix, limits, callback), fetched when needed. */
  grant() {
    return this.credentials.current();
  }

  /** Send files added from now on in `mode` (Mode.AUTO, STS or FORM); queued files keep theirs. */
  setMode(mode) {
    if (!MODES.has(mode)) {
      throw new TypeError(`mode must be one of ${[...MODES].join(', ')}, not ${mode}`);
    }
    this.options.mode = mode;
  }

  /** Whether auto mode sends any file as a form (formUpload or formUploadTypes is set). */
  get autoUsesForm() {
    const { formUpload, formUploadTypes } = this.options;
    return formUpload !== false || Boolean(formUploadTypes && formUploadTypes.length);
  }

  /** The path `file` would take now: `put`, `multipart` or `form`. */
  pathFor(file) {
    const { mode, multipartThreshold, formUpload, formUploadTypes } = this.options;
    const small = file.size < multipartThreshold;
    if (mode === Mode.FORM) return 'form';
    if (mode === Mode.AUTO && file.size > 0) {
      const form = typeof formUpload === 'function' ? Boolean(formUpload(file))
        : small && (formUpload === true || Boolean(formUploadTypes && formUploadTypes.length
          && typeAllowed(contentTypeOf(file), formUploadTypes)));
      if (form) return 'form';
    }
    return small ? 'put' : 'multipart';
  }

  /**
   * Why `upload` must not start, from what the browser knows (the last grant's limits; a
   * form upload without a grant leaves that to the server), or null.
   */
  _refusal(upload, grant) {
    return checkLimits(upload.file, grant && grant.limits)
      || (upload.mode === 'form' ? formRefusal(upload.file) : null);
  }

  /**
   * Add files (File objects); each becomes an Upload, refused at once (status error, kind
   * `limits`) when it breaks a limit of the current grant, else queued.
   * @param {Iterable<File>} files
   * @returns {Upload[]}
   */
  add(files) {
    const added = [];
    for (const file of files) {
      const upload = new Upload(this, file);
      this.uploads.push(upload);
      added.push(upload);
      const refusal = this._refusal(upload, this.credentials.grant);
      if (refusal) {
        upload._finish(Status.ERROR, refusal);
      } else {
        this._enqueue(upload);
      }
    }
    return added;
  }

  /** Multipart uploads left unfinished (e.g. by a reload) for the current user. */
  interrupted() {
    const grant = this.credentials.grant;
    return grant ? this.checkpoints.list(grant.prefix) : [];
  }

  /** Forget an interrupted upload and abort it in OSS so its parts stop taking space. */
  async discard(entry) {
    this.checkpoints.remove(entry.storageKey);
    const grant = await this.credentials.current();
    const client = this._client(grant);
    try {
      await client.abortMultipartUpload(entry.key, entry.uploadId);
    } catch {
      // already gone, or no network: the bucket's lifecycle rule cleans up eventually
    }
  }

  /** One page of the caller's upload records: {uploads, nextCursor}. */
  async listUploads({ limit = 20, cursor = null } = {}) {
    const token = await this.options.getBearerToken();
    if (!token) throw new OssgateError('session', 'Not signed in.', { code: 'not_signed_in' });
    const url = new URL(this.options.uploadsUrl, globalThis.location && globalThis.location.href);
    url.searchParams.set('limit', String(limit));
    if (cursor) url.searchParams.set('cursor', cursor);
    let response;
    try {
      response = await this.options.fetch(url.toString(), {
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (err) {
      throw new OssgateError('network', 'The upload server cannot be reached.', { cause: err });
    }
    if (!response.ok) {
      const error = await apiError(response);
      if (error.kind === 'session') {
        this.dispatchEvent(new CustomEvent('session-expired', { detail: error }));
      }
      throw error;
    }
    return response.json();
  }

  _enqueue(upload) {
    this._queue.push(upload);
    this._pump();
  }

  _pump() {
    while (this._running < this.options.concurrentFiles && this._queue.length > 0) {
      const upload = this._queue.shift();
      if (upload.status !== Status.QUEUED) continue; // cancelled while waiting
      this._running += 1;
      this._run(upload).finally(() => {
        this._running -= 1;
        this._pump();
      });
    }
  }

  /**
   * An ali-oss client on the shared credentials, with the race guard on every request, that
   * sends Blob slices of the file through `transport` (an XhrTransport).
   */
  _client(grant, transport = new XhrTransport()) {
    const source = this.credentials;
    const config = {
      region: grant.region,
      bucket: grant.bucket,
      secure: grant.secure !== false,
      ...stsKeys(grant),
      authorizationV4: true,
      refreshSTSToken: async () => stsKeys(await source.refresh()),
      refreshSTSTokenInterval: source.interval(),
      timeout: this.options.timeoutMs,
    };
    if (grant.endpoint) config.endpoint = grant.endpoint;
    const client = new this.options.OSS(config);
    client.urllib = transport;
    // Parts and puts as slices of the File itself: nothing is copied into memory.
    client._createBuffer = async (file, start, end) => file.slice(start, end);
    const request = client.request;
    client.request = async (params) => {
      await source.ensureFresh();
      Object.assign(client.options, stsKeys(source.grant));
      client.options.refreshSTSTokenInterval = source.interval();
      // ali-oss times its own refresh from here: the shared credentials' age, not this client's.
      client.stsTokenFreshTime = new Date(source.fetchedAt);
      return request.call(client, params);
    };
    return client;
  }

  async _run(upload) {
    upload._setStatus(Status.UPLOADING);
    let credentialRetry = true;
    let restartFresh = true;
    const form = upload.mode === 'form';
    for (;;) {
      try {
        // A form needs no STS credentials: the limits of the last grant, if any, are enough.
        const grant = form ? this.credentials.grant : await this.credentials.current();
        const refusal = this._refusal(upload, grant);
        if (refusal) {
          upload._finish(Status.ERROR, refusal);
          return;
        }
        if (upload._cancelRequested) {
          upload._finish(Status.CANCELLED);
          return;
        }
        const result = await this._attempt(upload, grant);
        upload.result = result;
        upload._inflightBytes = 0;
        upload._doneBytes = upload.file.size;
        upload._progress();
        this._forget(upload, grant);
        upload._finish(Status.DONE);
        return;
      } catch (raw) {
        if (upload._cancelRequested) {
          upload._finish(Status.CANCELLED, null);
          return;
        }
        const error = await this._classify(raw);
        const grant = this.credentials.grant;
        if (error.kind === 'credentials' && credentialRetry) {
          credentialRetry = false; // the guard makes this rare: expired or revoked between checks
          // A form's next attempt asks for a new policy, signed with fresh credentials.
          if (!form) await this.credentials.refresh().catch(() => {});
          continue;
        }
        if (error.code === 'upload_gone' && restartFresh) {
          restartFresh = false; // the multipart upload was aborted or expired: start over
          this._forget(upload, grant);
          upload.resumedParts = 0;
          continue;
        }
        if (error.kind === 'unconfirmed') {
          this._forget(upload, grant);
          upload._finish(Status.UNCONFIRMED, error);
        } else if (error.kind === 'cancelled') {
          upload._finish(Status.CANCELLED, null);
        } else {
          upload._finish(Status.ERROR, error);
        }
        return;
      }
    }
  }

  _forget(upload, grant) {
    upload._checkpoint = null;
    if (grant) this.checkpoints.clear(grant.prefix, upload.file);
  }

  async _attempt(upload, grant) {
    const inflight = new Map(); // XHR -> bytes of its body sent so far
    const transport = new XhrTransport({
      onProgress: (xhr, loaded) => {
        if (loaded === null) inflight.delete(xhr);
        else inflight.set(xhr, loaded);
        let sum = 0;
        for (const bytes of inflight.values()) sum += bytes;
        upload._inflightBytes = sum;
        upload._progress();
      },
    });
    if (upload.mode === 'form') {
      upload._transport = transport;
      return this._form(upload, transport);
    }
    const client = this._client(grant, transport);
    upload._client = client;
    upload._transport = transport;
    const options = { mime: contentTypeOf(upload.file), timeout: this.options.timeoutMs };
    if (grant.callback) options.callback = { ...grant.callback };
    if (upload.mode === 'put') {
      upload.key = upload.key || this.options.keyFor(upload.file, grant);
      upload._startAttempt(0);
      const result = await client.put(upload.key, upload.file, options);
      return { key: upload.key, etag: result.res.headers.etag || null, data: result.data ?? null };
    }
    return this._multipart(client, upload, grant, options);
  }

  async _multipart(client, upload, grant, options) {
    const { file } = upload;
    const saved = this.checkpoints.load(grant.prefix, file) || upload._checkpoint;
    const partSize = saved ? saved.partSize : this.options.partSize;
    const doneBytes = (parts) => parts.reduce(
      (sum, p) => sum + Math.min(partSize, file.size - (p.number - 1) * partSize), 0);
    upload.partsTotal = Math.ceil(file.size / partSize);
    const multipart = {
      ...options,
      partSize,
      parallel: this.options.parallel,
      progress: async (fraction, checkpoint) => {
        if (!checkpoint) return; // the final progress(1) after Complete
        this.checkpoints.save(grant.prefix, file, checkpoint);
        upload._checkpoint = CheckpointStore.entry(file, checkpoint);
        upload.partsDone = checkpoint.doneParts.length;
        upload._doneBytes = doneBytes(checkpoint.doneParts);
        upload._progress(true);
      },
    };
    if (saved) {
      upload.key = saved.key;
      upload.resumedParts = saved.doneParts.length;
      upload.partsDone = saved.doneParts.length;
      multipart.checkpoint = {
        file,
        name: saved.key,
        fileSize: saved.fileSize,
        partSize: saved.partSize,
        uploadId: saved.uploadId,
        doneParts: saved.doneParts.map((p) => ({ ...p })),
      };
    } else {
      upload.key = upload.key || this.options.keyFor(file, grant);
      upload.partsDone = 0;
    }
    upload._startAttempt(saved ? doneBytes(saved.doneParts) : 0);
    const result = await client.multipartUpload(upload.key, file, multipart);
    return { key: upload.key, etag: result.etag || null, data: result.data ?? null };
  }

  /**
   * The fields of one form upload from ossgate: `{url, fields, key, expiresAt}`. A refusal
   * about the file (413, 415) comes back as a `limits` error.
   */
  async postPolicy(file) {
    const token = await this.options.getBearerToken();
    if (!token) {
      throw new OssgateError('session', 'Not signed in.', { code: 'not_signed_in', status: 401 });
    }
    let response;
    try {
      response = await this.options.fetch(this.options.postPolicyUrl, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        body: JSON.stringify({
          filename: file.name || 'file', size: file.size, contentType: contentTypeOf(file),
        }),
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (err) {
      throw new OssgateError('network', 'The upload server cannot be reached.', {
        code: 'network', cause: err,
      });
    }
    if (!response.ok) {
      const error = await apiError(response);
      if (error.kind === 'session') {
        this.dispatchEvent(new CustomEvent('session-expired', { detail: error }));
      }
      throw policyRefusal(error, file, this.credentials.grant && this.credentials.grant.limits);
    }
    return response.json();
  }

  /**
   * A form upload (PostObject): a policy for this file, then its fields unchanged and the file
   * last in one multipart POST. The answer is the callback's JSON (200), OSS's 203
   * CallbackFailed (stored, not confirmed) or OSS's XML error.
   */
  async _form(upload, transport) {
    const { file } = upload;
    const policy = await this.postPolicy(file);
    if (upload._cancelRequested) throw new OssgateError('cancelled', 'Cancelled.');
    upload.key = policy.key;
    const origin = new URL(policy.url, globalThis.location && location.href).origin;
    const form = new FormData();
    for (const [name, value] of Object.entries(policy.fields || {})) form.append(name, value);
    form.append('file', file, file.name || 'file'); // last: OSS ignores fields after the file
    upload._startAttempt(0);
    let answer;
    try {
      answer = await transport.request(policy.url, {
        method: 'POST', headers: {}, content: form, timeout: this.options.timeoutMs,
      });
    } catch (err) {
      err.ossOrigin = origin; // where to probe for CORS (the grant may not know this origin)
      throw err;
    }
    const { status, headers, data } = answer;
    if (status >= 200 && status < 300 && status !== 203) {
      return { key: policy.key, etag: headers.etag || null, data: jsonOrNull(data) };
    }
    const oss = ossErrorOf(data);
    const info = {
      code: oss.code || `http_${status}`,
      status,
      requestId: oss.requestId || headers['x-oss-request-id'] || null,
    };
    if (status === 403 && /policy expired/i.test(oss.message || '')) {
      // Ten minutes passed between the policy and the upload (a queue, a sleeping laptop).
      throw new OssgateError('credentials', 'The signed form expired before it was sent.',
        { ...info, code: 'policy_expired' });
    }
    const error = new Error(oss.message || `HTTP ${status}`);
    Object.assign(error, info, { name: `${info.code}Error`, ossOrigin: origin });
    throw error;
  }

  /** Turn whatever ali-oss or fetch threw into an OssgateError with a kind. */
  async _classify(err) {
    if (err instanceof OssgateError) return err;
    const e = err || {};
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
      return this._requestFailure(info, origin);
    }
    if (CREDENTIAL_CODES.has(e.code)) {
      return new OssgateError('credentials', e.message || e.code, info);
    }
    if (e.status === 403) return new OssgateError('denied', e.message || 'Access denied.', info);
    if (e.status >= 500) return new OssgateError('unavailable', e.message || 'OSS error.', info);
    return new OssgateError('server', e.message || String(err), info);
  }

  /**
   * A request that got no readable answer: the network, or CORS (the browser hides which).
   * Ask the OSS origin twice: a CORS-mode GET that can be read means CORS works (so it was
   * the network); otherwise an opaque no-cors GET that arrives means the server is there and
   * only CORS is missing.
   */
  async _requestFailure(info, ossOriginOfRequest = null) {
    const grant = this.credentials.grant;
    const origin = ossOriginOfRequest || (grant ? ossOrigin(grant) : null);
    const offline = globalThis.navigator && globalThis.navigator.onLine === false;
    if (!offline && origin) {
      const probe = (mode) => this.options.fetch(`${origin}/`, {
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
}
