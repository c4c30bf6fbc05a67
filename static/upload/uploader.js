/**
 * Uploader: a queue of Uploads on shared credentials, each sent as a put, a multipart upload
 * or a form, retried once when the credentials or the multipart upload went stale, and ended
 * by ossgate's verdict (from the callback, or asked for when the callback failed).
 */

import { apiFailure, bearerToken, reach } from './api.js';
import { CheckpointStore } from './checkpoints.js';
import { CredentialSource } from './credentials.js';
import { OssgateError, classify, ossErrorOf, rejectionError } from './errors.js';
import { checkLimits, contentTypeOf, formRefusal, policyRefusal, typeAllowed } from './limits.js';
import { Mode, checkMode, uploaderOptions } from './options.js';
import { ossClient } from './oss.js';
import { XhrTransport } from './transport.js';
import { Status, Upload } from './upload.js';

/** @import { TokenSource } from './api.js' */
/** @import { StoredCheckpoint } from './checkpoints.js' */
/** @import { Grant } from './credentials.js' */
/** @import { UploaderOptions } from './options.js' */
/** @import { CallbackData, UploadPath, UploadResult } from './upload.js' */

/**
 * A form upload's fields from ossgate (POST /api/post-policy): post every field, then the
 * file, to `url`.
 * @typedef {object} PostPolicy
 * @property {string} url
 * @property {Record<string, string>} fields
 * @property {string} key
 * @property {string} expiresAt
 */

/**
 * One of the caller's upload records (GET /api/uploads).
 * @typedef {object} UploadRecord
 * @property {number} id
 * @property {string} bucket
 * @property {string} key
 * @property {string} etag
 * @property {number} size
 * @property {string} contentType
 * @property {string} destination
 * @property {'accepted' | 'rejected'} status
 * @property {string} [reason]  of a rejected one (`too_large`, `type_not_allowed`, …)
 * @property {string} [message]  of a rejected one, for a person
 * @property {'callback' | 'confirm' | 'sweep' | 'reconcile'} source
 * @property {Record<string, string>} custom
 * @property {string} createdAt
 * @property {string} updatedAt
 */

/**
 * Whether `data` is an answer of a callback or of the confirm (a JSON object); anything else
 * (nothing, a body that was not JSON) leaves the verdict unknown.
 * @param {unknown} data
 * @returns {data is CallbackData}
 */
function isAnswer(data) {
  return typeof data === 'object' && data !== null && !Array.isArray(data);
}

/**
 * A form's answer (the callback's JSON), or null when it is not JSON.
 * @param {string} text
 * @returns {CallbackData | null}
 */
function jsonOrNull(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * ali-oss's `data` of a put or multipart upload: the callback's JSON when there was a
 * callback, else nothing of use.
 * @param {unknown} data
 * @returns {CallbackData | null}
 */
function callbackData(data) {
  return /** @type {CallbackData | null} */ (data ?? null);
}

/**
 * Waits before asking again for the verdict of an upload whose callback failed, when ossgate
 * answered 503 (its bucket or database unreachable for a moment), 429 or nothing at all.
 * After the last one the upload stays `unconfirmed`: ossgate's sweep judges it later.
 */
const CONFIRM_BACKOFF_MS = [500, 1500];
/** A Retry-After longer than this is not waited for (the sweep will judge the upload). */
const CONFIRM_MAX_WAIT_MS = 5000;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => {
  setTimeout(resolve, ms);
});

/**
 * Uploads files with credentials from ossgate; see the module comment of ossgate-upload.js.
 * Events: `session-expired` (detail: the OssgateError) when the bearer token stops working.
 */
export class Uploader extends EventTarget {
  /**
   * @param {Partial<UploaderOptions> & {getBearerToken: TokenSource}} options
   *   `getBearerToken` (required: () => string | Promise<string>), `baseUrl` (where ossgate
   *   is; default: the ossgate the module was loaded from) and any other of DEFAULTS, plus
   *   `OSS` (the ali-oss constructor, default window.OSS), `fetch`, `storage` (default
   *   localStorage; null disables resume), `keyFor(file, grant)`. `OSS` is not needed for
   *   form uploads.
   */
  constructor(options) {
    super();
    /** @type {UploaderOptions} */
    this.options = uploaderOptions(options);
    this.credentials = new CredentialSource(this.options);
    this.credentials.addEventListener('session-expired', (event) => {
      const { detail } = /** @type {CustomEvent<OssgateError>} */ (event);
      this.dispatchEvent(new CustomEvent('session-expired', { detail }));
    });
    this.checkpoints = new CheckpointStore(this.options.storage, this.options.checkpointPrefix);
    /** Every Upload added, in order. @type {Upload[]} */
    this.uploads = [];
    /** @type {Upload[]} */
    this._queue = [];
    this._running = 0;
  }

  /**
   * The current grant (credentials, prefix, limits, callback), fetched when needed.
   * @returns {Promise<Grant>}
   */
  grant() {
    return this.credentials.current();
  }

  /**
   * Send files added from now on in `mode` (Mode.AUTO, STS or FORM); queued files keep theirs.
   * @param {string} mode
   */
  setMode(mode) {
    this.options.mode = checkMode(mode);
  }

  /** Whether auto mode sends any file as a form (formUpload or formUploadTypes is set). */
  get autoUsesForm() {
    const { formUpload, formUploadTypes } = this.options;
    return formUpload !== false || Boolean(formUploadTypes && formUploadTypes.length);
  }

  /**
   * The path `file` would take now.
   * @param {File} file
   * @returns {UploadPath}
   */
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
   * @param {Upload} upload
   * @param {Grant | null} grant
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

  /**
   * Multipart uploads left unfinished (e.g. by a reload) for the current user.
   * @returns {StoredCheckpoint[]}
   */
  interrupted() {
    const grant = this.credentials.grant;
    return grant ? this.checkpoints.list(grant.prefix) : [];
  }

  /**
   * Forget an interrupted upload and abort it in OSS so its parts stop taking space.
   * @param {StoredCheckpoint} entry  one of interrupted()
   */
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

  /**
   * One page of the caller's upload records, newest first: the accepted ones, unless
   * `status` says `rejected` or `all`.
   * @param {{limit?: number, cursor?: string | null,
   *   status?: 'accepted' | 'rejected' | 'all' | null}} [page]
   * @returns {Promise<{uploads: UploadRecord[], nextCursor: string | null}>}
   */
  async listUploads({ limit = 20, cursor = null, status = null } = {}) {
    const token = await bearerToken(this.options.getBearerToken);
    const url = new URL(this.options.uploadsUrl); // absolute: see uploaderOptions
    url.searchParams.set('limit', String(limit));
    if (cursor) url.searchParams.set('cursor', cursor);
    if (status) url.searchParams.set('status', status);
    const response = await reach(this.options.fetch, url.toString(), {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!response.ok) throw await apiFailure(response, this);
    return response.json();
  }

  /** @param {Upload} upload */
  _enqueue(upload) {
    this._queue.push(upload);
    this._pump();
  }

  _pump() {
    while (this._running < this.options.concurrentFiles && this._queue.length > 0) {
      const upload = /** @type {Upload} */ (this._queue.shift());
      if (upload.status !== Status.QUEUED) continue; // cancelled while waiting
      this._running += 1;
      this._run(upload).finally(() => {
        this._running -= 1;
        this._pump();
      });
    }
  }

  /**
   * An ali-oss client on the shared credentials (see ossClient).
   * @param {Grant} grant
   * @param {XhrTransport} [transport]
   */
  _client(grant, transport) {
    const { OSS } = this.options;
    if (!OSS) {
      throw new TypeError('No ali-oss: its bundle did not load (window.OSS) and no OSS option');
    }
    return ossClient(OSS, grant, this.credentials, this.options.timeoutMs, transport);
  }

  /** @param {Upload} upload */
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
        if (upload._callback && !isAnswer(result.data)) {
          // Stored, but the callback's answer is missing or unreadable: ask for the verdict.
          await this._confirm(upload, null);
        } else {
          this._conclude(upload, result);
        }
        return;
      } catch (raw) {
        if (upload._cancelRequested) {
          upload._finish(Status.CANCELLED, null);
          return;
        }
        const error = await classify(raw, {
          fetch: this.options.fetch, grant: this.credentials.grant,
        });
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
          // 203 CallbackFailed: stored, but ossgate was not told. Ask it now.
          this._forget(upload, grant);
          await this._confirm(upload, error);
        } else if (error.kind === 'cancelled') {
          upload._finish(Status.CANCELLED, null);
        } else {
          upload._finish(Status.ERROR, error);
        }
        return;
      }
    }
  }

  /**
   * End `upload` by ossgate's verdict in `result.data`: rejected (the object is gone), or
   * done (recorded, or no callback at all).
   * @param {Upload} upload
   * @param {UploadResult} result
   */
  _conclude(upload, result) {
    upload.result = result;
    const { data } = result;
    if (data && data.status === 'rejected') {
      upload._finish(Status.REJECTED, rejectionError(data));
    } else {
      upload._finish(Status.DONE);
    }
  }

  /**
   * Ask ossgate for the verdict on a stored upload whose callback failed (203) or gave no
   * readable answer, so it ends done or rejected now rather than `unconfirmed` until the
   * sweep. A 503, a 429 or no answer is asked again after CONFIRM_BACKOFF_MS; then, or on
   * any other refusal, the upload stays `unconfirmed`. A 404 means the object is not in the
   * bucket after all: an error, and a retry sends the file again.
   * @param {Upload} upload  its key is set
   * @param {OssgateError | null} unconfirmed  the 203's error, if that is why
   */
  async _confirm(upload, unconfirmed) {
    upload.confirming = true;
    upload._emit();
    const key = /** @type {string} */ (upload.key);
    const etag = upload.result ? upload.result.etag : null;
    /** @type {OssgateError} */
    let failure;
    for (let attempt = 0; ; attempt += 1) {
      try {
        const answer = await this.confirm(key);
        const recorded = typeof answer.etag === 'string' ? answer.etag : null;
        this._conclude(upload, { key, etag: recorded || etag, data: answer });
        return;
      } catch (err) {
        failure = err instanceof OssgateError ? err
          : new OssgateError('server', String(err), { cause: err });
      }
      if (failure.status === 404) {
        upload._finish(Status.ERROR, failure);
        return;
      }
      const again = failure.kind === 'unavailable' || failure.kind === 'network'
        || failure.kind === 'rate_limited';
      const wait = Math.max(CONFIRM_BACKOFF_MS[attempt] ?? Infinity,
        (failure.retryAfter || 0) * 1000);
      if (!again || wait > CONFIRM_MAX_WAIT_MS) break;
      await sleep(wait);
    }
    upload._finish(Status.UNCONFIRMED, new OssgateError('unconfirmed',
      'The file is stored, but ossgate could not confirm it yet; it will check it shortly.', {
        code: failure.code,
        status: failure.status,
        requestId: unconfirmed ? unconfirmed.requestId : null,
        cause: failure,
      }));
  }

  /**
   * ossgate's verdict on one of the caller's uploads (POST confirmUrl `{key}`), judged now:
   * `{status: 'recorded', recordId, …}` or `{status: 'rejected', reason, message}`. For an
   * upload whose callback failed; the Uploader asks by itself. Throws an OssgateError: 403
   * `outside_prefix`, 404 `no_such_object`, 503 (`unavailable`: ossgate judges it later), …
   * @param {string} key  the object key
   * @returns {Promise<CallbackData>}
   */
  async confirm(key) {
    const token = await bearerToken(this.options.getBearerToken, 401);
    const response = await reach(this.options.fetch, this.options.confirmUrl, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
        Accept: 'application/json',
      },
      body: JSON.stringify({ key }),
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!response.ok) throw await apiFailure(response, this);
    const answer = await response.json().catch(() => null);
    if (!isAnswer(answer)) {
      throw new OssgateError('server', 'ossgate gave no verdict.', {
        code: 'no_verdict', status: response.status,
      });
    }
    return answer;
  }

  /**
   * @param {Upload} upload
   * @param {Grant | null} grant
   */
  _forget(upload, grant) {
    upload._checkpoint = null;
    if (grant) this.checkpoints.clear(grant.prefix, upload.file);
  }

  /**
   * One attempt at sending `upload` the way its mode says.
   * @param {Upload} upload
   * @param {Grant | null} grant  null only for a form
   * @returns {Promise<UploadResult>}
   */
  async _attempt(upload, grant) {
    /** @type {Map<XMLHttpRequest, number>} bytes of each request's body sent so far */
    const inflight = new Map();
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
    const sts = /** @type {Grant} */ (grant); // only a form goes without one (see _run)
    const client = this._client(sts, transport);
    upload._client = client;
    upload._transport = transport;
    /** @type {AliOss.UploadOptions} */
    const options = { mime: contentTypeOf(upload.file), timeout: this.options.timeoutMs };
    if (sts.callback) options.callback = { ...sts.callback };
    upload._callback = Boolean(sts.callback);
    if (upload.mode === 'put') {
      upload.key = upload.key || this.options.keyFor(upload.file, sts);
      upload._startAttempt(0);
      const result = await client.put(upload.key, upload.file, options);
      return {
        key: upload.key, etag: result.res.headers.etag || null, data: callbackData(result.data),
      };
    }
    return this._multipart(client, upload, sts, options);
  }

  /**
   * @param {AliOss.Client} client
   * @param {Upload} upload
   * @param {Grant} grant
   * @param {AliOss.UploadOptions} options
   * @returns {Promise<UploadResult>}
   */
  async _multipart(client, upload, grant, options) {
    const { file } = upload;
    const saved = this.checkpoints.load(grant.prefix, file) || upload._checkpoint;
    const partSize = saved ? saved.partSize : this.options.partSize;
    /** @param {AliOss.DonePart[]} parts */
    const doneBytes = (parts) => parts.reduce(
      (sum, p) => sum + Math.min(partSize, file.size - (p.number - 1) * partSize), 0);
    upload.partsTotal = Math.ceil(file.size / partSize);
    /** @type {AliOss.MultipartOptions} */
    const multipart = {
      ...options,
      partSize,
      parallel: this.options.parallel,
      progress: async (_fraction, checkpoint) => {
        if (!checkpoint) return; // the final progress(1) after Complete
        this.checkpoints.save(grant.prefix, file, checkpoint);
        upload._checkpoint = CheckpointStore.entry(file, checkpoint);
        upload.partsDone = checkpoint.doneParts.length;
        upload._doneBytes = doneBytes(checkpoint.doneParts);
        upload._progress(true);
      },
    };
    let key;
    if (saved) {
      key = saved.key;
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
      key = upload.key || this.options.keyFor(file, grant);
      upload.partsDone = 0;
    }
    upload.key = key;
    upload._startAttempt(saved ? doneBytes(saved.doneParts) : 0);
    const result = await client.multipartUpload(key, file, multipart);
    return { key, etag: result.etag || null, data: callbackData(result.data) };
  }

  /**
   * The fields of one form upload from ossgate. A refusal about the file (413, 415) comes
   * back as a `limits` error.
   * @param {File} file
   * @returns {Promise<PostPolicy>}
   */
  async postPolicy(file) {
    const token = await bearerToken(this.options.getBearerToken, 401);
    const response = await reach(this.options.fetch, this.options.postPolicyUrl, {
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
    if (!response.ok) {
      const error = await apiFailure(response, this);
      throw policyRefusal(error, file, this.credentials.grant && this.credentials.grant.limits);
    }
    return response.json();
  }

  /**
   * A form upload (PostObject): a policy for this file, then its fields unchanged and the file
   * last in one multipart POST. The answer is the callback's JSON (200: ossgate's verdict,
   * recorded or rejected), OSS's 203 CallbackFailed (stored, not confirmed) or OSS's XML
   * error.
   * @param {Upload} upload
   * @param {XhrTransport} transport
   * @returns {Promise<UploadResult>}
   */
  async _form(upload, transport) {
    const { file } = upload;
    const policy = await this.postPolicy(file);
    if (upload._cancelRequested) throw new OssgateError('cancelled', 'Cancelled.');
    upload.key = policy.key;
    upload._callback = Boolean(policy.fields && policy.fields.callback);
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
      // where to probe for CORS (the grant may not know this origin)
      /** @type {Error & {ossOrigin?: string}} */ (err).ossOrigin = origin;
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
}
