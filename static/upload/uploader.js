/**
 * Uploader: a queue of Uploads on shared credentials (one set per destination), each sent as
 * a put, a multipart upload or a form, retried once when the credentials or the multipart
 * upload went stale, and ended by ossgate's verdict (from the callback, or asked for when
 * the callback failed).
 */

import { apiFailure, bearerToken, reach } from './api.js';
import { CheckpointStore } from './checkpoints.js';
import { CredentialSource } from './credentials.js';
import { OssgateError, classify, ossErrorOf, rejectionError } from './errors.js';
import { checkLimits, contentTypeOf, formRefusal, policyRefusal, typeAllowed } from './limits.js';
import { Mode, checkDestination, checkMode, uploaderOptions } from './options.js';
import { ossClient } from './oss.js';
import { XhrTransport } from './transport.js';
import { Status, Upload } from './upload.js';

/** @import { TokenSource } from './api.js' */
/** @import { StoredCheckpoint } from './checkpoints.js' */
/** @import { Grant } from './credentials.js' */
/** @import { UploaderOptions } from './options.js' */
/** @import { CallbackData, UploadPath, UploadResult } from './upload.js' */
/** @import { Limits } from './limits.js' */

/**
 * One destination the caller may use (GET /api/destinations): its name, its key prefix
 * (with `{user}`), its limits and how files go there in auto mode (`formUpload`).
 * @typedef {object} Destination
 * @property {string} name
 * @property {string} prefix
 * @property {number} maxBytes
 * @property {string[]} contentTypes
 * @property {'off' | 'auto' | 'always'} formUpload
 */

/**
 * The answer of GET /api/destinations: the caller's destinations in the configuration's
 * order, and the one used when none is named (null when the caller may not use it).
 * @typedef {object} DestinationList
 * @property {Destination[]} destinations
 * @property {string | null} default
 */

/**
 * What auto mode does with the files of a destination: `direct` (STS credentials), `form`
 * (every non-empty file as a form), `small` (forms below multipartThreshold), `types` (forms
 * below multipartThreshold of formUploadTypes) or `custom` (the formUpload function decides).
 * @typedef {'direct' | 'form' | 'small' | 'types' | 'custom'} AutoRule
 */

/**
 * An interrupted multipart upload (see interrupted()), with the destination it went to.
 * @typedef {StoredCheckpoint & {destination?: string | null}} InterruptedUpload
 */

/**
 * A form upload's fields from ossgate (POST /api/post-policy): post every field, then the
 * file, to `url`.
 * @typedef {object} PostPolicy
 * @property {string} url
 * @property {Record<string, string>} fields
 * @property {string} key
 * @property {string} expiresAt
 * @property {string} [destination]  the destination's name
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
 *
 * Destinations: each file goes to the one `add(files, {destination})` names, else to the
 * `destination` option, else to the server's default. Credentials are kept per destination
 * (credentialsFor): a grant for one is never used for another, whose session policy allows
 * another prefix. The limits checked before sending are that destination's (its grant's, or
 * those destinations() listed), and in auto mode its `formUpload` rule says which files go as
 * forms (autoRule).
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
    /**
     * The credentials of each destination asked for, by name ('' for the server's default).
     * @type {Map<string, CredentialSource>}
     */
    this._sources = new Map();
    /**
     * The last destinations() answer, by name, with the default's name.
     * @type {{byName: Map<string, Destination>, default: string | null} | null}
     */
    this._catalog = null;
    this.checkpoints = new CheckpointStore(this.options.storage, this.options.checkpointPrefix);
    /** Every Upload added, in order. @type {Upload[]} */
    this.uploads = [];
    /** @type {Upload[]} */
    this._queue = [];
    this._running = 0;
  }

  /** The credentials of the `destination` option (the server's default when it is null). */
  get credentials() {
    return this.credentialsFor(this.options.destination);
  }

  /**
   * The credentials of one destination, created when first asked for and kept: every upload
   * to it shares them, and no upload to another destination ever uses them.
   * @param {string | null} destination  null: the server's default
   * @returns {CredentialSource}
   */
  credentialsFor(destination) {
    const name = checkDestination(destination);
    const key = name ?? '';
    let source = this._sources.get(key);
    if (!source) {
      source = new CredentialSource({ ...this.options, destination: name });
      source.addEventListener('session-expired', (event) => {
        const { detail } = /** @type {CustomEvent<OssgateError>} */ (event);
        this.dispatchEvent(new CustomEvent('session-expired', { detail }));
      });
      this._sources.set(key, source);
    }
    return source;
  }

  /**
   * The current grant of a destination (credentials, prefix, limits, callback), fetched when
   * needed.
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {Promise<Grant>}
   */
  grant(destination = this.options.destination) {
    return this.credentialsFor(destination).current();
  }

  /**
   * The destinations the user may use (GET destinationsUrl), for a frontend that offers a
   * choice; kept, so that the limits and form rule of each are known before its first grant.
   * @returns {Promise<DestinationList>}
   */
  async destinations() {
    const token = await bearerToken(this.options.getBearerToken, 401);
    const response = await reach(this.options.fetch, this.options.destinationsUrl, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!response.ok) throw await apiFailure(response, this);
    /** @type {DestinationList} */
    const answer = await response.json();
    this._catalog = {
      byName: new Map(answer.destinations.map((d) => [d.name, d])),
      default: answer.default,
    };
    return answer;
  }

  /**
   * What destinations() said about a destination (null: the default), or null when it was
   * not asked or did not list it.
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {Destination | null}
   */
  destinationInfo(destination = this.options.destination) {
    if (!this._catalog) return null;
    const name = destination ?? this._catalog.default;
    return (name !== null && this._catalog.byName.get(name)) || null;
  }

  /**
   * What auto mode does with the files of `destination`. The `formUpload` function decides
   * alone; otherwise a file goes as a form when the uploader's own rule (`formUpload: true`,
   * `formUploadTypes`) or the destination's `formUpload` says so: `always`, or `auto` for
   * files below multipartThreshold (of formUploadTypes, when listed). A destination that
   * destinations() did not describe adds nothing.
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {AutoRule}
   */
  autoRule(destination = this.options.destination) {
    const { formUpload, formUploadTypes } = this.options;
    if (typeof formUpload === 'function') return 'custom';
    const info = this.destinationInfo(destination);
    const rule = info ? info.formUpload : 'off';
    const typed = Boolean(formUploadTypes && formUploadTypes.length);
    if (rule === 'always') return 'form';
    if (formUpload === true || (rule === 'auto' && !typed)) return 'small';
    return typed ? 'types' : 'direct';
  }

  /**
   * Send files added from now on in `mode` (Mode.AUTO, STS or FORM); queued files keep theirs.
   * @param {string} mode
   */
  setMode(mode) {
    this.options.mode = checkMode(mode);
  }

  /**
   * Whether the uploader's own rule sends any file as a form in auto mode (formUpload or
   * formUploadTypes is set); autoRule() adds the destination's.
   */
  get autoUsesForm() {
    const { formUpload, formUploadTypes } = this.options;
    return formUpload !== false || Boolean(formUploadTypes && formUploadTypes.length);
  }

  /**
   * The path `file` would take now, to `destination`.
   * @param {File} file
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {UploadPath}
   */
  pathFor(file, destination = this.options.destination) {
    const { mode, multipartThreshold, formUpload, formUploadTypes } = this.options;
    const small = file.size < multipartThreshold;
    if (mode === Mode.FORM) return 'form';
    if (mode === Mode.AUTO && file.size > 0) {
      const rule = this.autoRule(destination);
      const form = rule === 'custom'
        ? Boolean(/** @type {(file: File) => boolean} */ (formUpload)(file))
        : rule === 'form' || (small && (rule === 'small' || (rule === 'types'
          && typeAllowed(contentTypeOf(file), /** @type {string[]} */ (formUploadTypes)))));
      if (form) return 'form';
    }
    return small ? 'put' : 'multipart';
  }

  /**
   * The limits of the destination `upload` goes to, as far as the browser knows them: its
   * last grant's, else what destinations() listed; null when neither is known yet.
   * @param {Upload} upload
   * @returns {Limits | null}
   */
  _limitsFor(upload) {
    const grant = upload._credentials.grant;
    if (grant) return grant.limits;
    const info = this.destinationInfo(upload.destination);
    return info ? { maxBytes: info.maxBytes, contentTypes: info.contentTypes } : null;
  }

  /**
   * Why `upload` must not start, from what the browser knows (its destination's limits; a
   * form upload without them leaves that to the server), or null.
   * @param {Upload} upload
   */
  _refusal(upload) {
    const refusal = checkLimits(upload.file, this._limitsFor(upload))
      || (upload.mode === 'form' ? formRefusal(upload.file) : null);
    if (refusal) refusal.detail.destination = upload.destination;
    return refusal;
  }

  /**
   * Add files (File objects) for one destination; each becomes an Upload, refused at once
   * (status error, kind `limits`) when it breaks a limit of that destination, else queued.
   * @param {Iterable<File>} files
   * @param {{destination?: string | null}} [options]  `destination`: its name; default: the
   *   `destination` option (null: the server's default)
   * @returns {Upload[]}
   */
  add(files, { destination = null } = {}) {
    const name = checkDestination(destination);
    const added = [];
    for (const file of files) {
      const upload = new Upload(this, file, name);
      this.uploads.push(upload);
      added.push(upload);
      const refusal = this._refusal(upload);
      if (refusal) {
        upload._finish(Status.ERROR, refusal);
      } else {
        this._enqueue(upload);
      }
    }
    return added;
  }

  /**
   * Multipart uploads to a destination left unfinished (e.g. by a reload) by the current
   * user; known once that destination has a grant. Adding the same file to the same
   * destination resumes one.
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {InterruptedUpload[]}
   */
  interrupted(destination = this.options.destination) {
    const grant = this.credentialsFor(destination).grant;
    return grant
      ? this.checkpoints.list(grant.prefix).map((entry) => ({ ...entry, destination }))
      : [];
  }

  /**
   * Forget an interrupted upload and abort it in OSS so its parts stop taking space.
   * @param {InterruptedUpload} entry  one of interrupted()
   */
  async discard(entry) {
    this.checkpoints.remove(entry.storageKey);
    const source = this.credentialsFor(entry.destination === undefined
      ? this.options.destination : entry.destination);
    const grant = await source.current();
    const client = this._client(grant, source);
    try {
      await client.abortMultipartUpload(entry.key, entry.uploadId);
    } catch {
      // already gone, or no network: the bucket's lifecycle rule cleans up eventually
    }
  }

  /**
   * One page of the caller's upload records, newest first: the accepted ones, unless
   * `status` says `rejected` or `all`; of every destination, unless `destination` names one.
   * @param {{limit?: number, cursor?: string | null,
   *   status?: 'accepted' | 'rejected' | 'all' | null, destination?: string | null}} [page]
   * @returns {Promise<{uploads: UploadRecord[], nextCursor: string | null}>}
   */
  async listUploads({ limit = 20, cursor = null, status = null, destination = null } = {}) {
    const token = await bearerToken(this.options.getBearerToken);
    const url = new URL(this.options.uploadsUrl); // absolute: see uploaderOptions
    url.searchParams.set('limit', String(limit));
    if (cursor) url.searchParams.set('cursor', cursor);
    if (status) url.searchParams.set('status', status);
    if (destination) url.searchParams.set('destination', destination);
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
   * An ali-oss client on one destination's shared credentials (see ossClient).
   * @param {Grant} grant
   * @param {CredentialSource} source  whose grant it is
   * @param {XhrTransport} [transport]
   */
  _client(grant, source, transport) {
    const { OSS } = this.options;
    if (!OSS) {
      throw new TypeError('No ali-oss: its bundle did not load (window.OSS) and no OSS option');
    }
    return ossClient(OSS, grant, source, this.options.timeoutMs, transport);
  }

  /** @param {Upload} upload */
  async _run(upload) {
    upload._setStatus(Status.UPLOADING);
    let credentialRetry = true;
    let restartFresh = true;
    const form = upload.mode === 'form';
    const credentials = upload._credentials; // its destination's, never another's
    for (;;) {
      try {
        // A form needs no STS credentials: the limits known of its destination are enough.
        const grant = form ? credentials.grant : await credentials.current();
        if (grant && grant.destination) upload.destination = grant.destination;
        const refusal = this._refusal(upload);
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
        const grant = credentials.grant;
        const error = await classify(raw, { fetch: this.options.fetch, grant });
        if (error.kind === 'credentials' && credentialRetry) {
          credentialRetry = false; // the guard makes this rare: expired or revoked between checks
          // A form's next attempt asks for a new policy, signed with fresh credentials.
          if (!form) await credentials.refresh().catch(() => {});
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
    const client = this._client(sts, upload._credentials, transport);
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
   * The fields of one form upload to a destination from ossgate. A refusal about the file
   * (413, 415) comes back as a `limits` error, one of the destination as `denied`.
   * @param {File} file
   * @param {string | null} [destination]  default: the `destination` option
   * @returns {Promise<PostPolicy>}
   */
  async postPolicy(file, destination = this.options.destination) {
    const name = checkDestination(destination);
    const token = await bearerToken(this.options.getBearerToken, 401);
    const response = await reach(this.options.fetch, this.options.postPolicyUrl, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
        Accept: 'application/json',
      },
      body: JSON.stringify({
        filename: file.name || 'file',
        size: file.size,
        contentType: contentTypeOf(file),
        ...(name === null ? {} : { destination: name }),
      }),
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!response.ok) {
      const error = await apiFailure(response, this);
      const grant = this.credentialsFor(name).grant;
      const info = this.destinationInfo(name);
      const limits = grant ? grant.limits : info;
      throw policyRefusal(error, file, limits);
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
    const policy = await this.postPolicy(file, upload._credentials.destination);
    if (upload._cancelRequested) throw new OssgateError('cancelled', 'Cancelled.');
    if (policy.destination) upload.destination = policy.destination;
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
