/** Upload: one file on its way to OSS, with its status, progress and outcome. */

/** @import { Uploader } from './uploader.js' */
/** @import { OssgateError } from './errors.js' */
/** @import { SavedCheckpoint } from './checkpoints.js' */
/** @import { XhrTransport } from './transport.js' */
/** @import { CredentialSource } from './credentials.js' */

export const Status = Object.freeze({
  QUEUED: 'queued',
  UPLOADING: 'uploading',
  DONE: 'done',
  // Stored, but ossgate's verdict is not known yet (its callback failed and so did the
  // confirm); ossgate's sweep judges the object soon.
  UNCONFIRMED: 'unconfirmed',
  // Stored, then judged against the destination's rules and removed by ossgate: a failure
  // that a retry would only repeat.
  REJECTED: 'rejected',
  ERROR: 'error',
  CANCELLED: 'cancelled',
});

/** @typedef {(typeof Status)[keyof typeof Status]} UploadStatus */

/**
 * How a file is sent, chosen when it is added: one put, a multipart upload or a form.
 * @typedef {'put' | 'multipart' | 'form'} UploadPath
 */

/**
 * ossgate's verdict on an upload, as its callback (relayed by OSS) or POST
 * /api/uploads/confirm answers: `{"status": "recorded", "recordId", "key", "size", "etag",
 * "contentType", "destination"}`, or `{"status": "rejected", "reason", "message"}` when the
 * upload broke a rule of its destination and was removed (server/uploads/answer.py).
 * @typedef {{
 *   status?: 'recorded' | 'rejected', recordId?: number, reason?: string, message?: string,
 * } & Record<string, unknown>} CallbackData
 */

/**
 * What a done or rejected upload left: its key, its ETag and ossgate's verdict (null without
 * a callback).
 * @typedef {object} UploadResult
 * @property {string} key
 * @property {string | null} etag
 * @property {CallbackData | null} data
 */

let uploadSequence = 0;

/**
 * One file on its way to OSS. Listen for `change` (status, progress, speed, error); `done`
 * resolves (never rejects) with this Upload once it settles as done, rejected, unconfirmed,
 * error or cancelled.
 */
export class Upload extends EventTarget {
  /**
   * @param {Uploader} uploader
   * @param {File} file
   * @param {string | null} [destination]  null: the uploader's (see Uploader.add)
   */
  constructor(uploader, file, destination = null) {
    super();
    uploadSequence += 1;
    this.id = `upload-${uploadSequence}`;
    this.uploader = uploader;
    this.file = file;
    const asked = destination ?? uploader.options.destination;
    /**
     * The destination's name: the one asked for, or, for the server's default (null), its
     * name once ossgate said it (in the credentials or the form policy).
     * @type {string | null}
     */
    this.destination = asked;
    /**
     * The credentials of the destination asked for, kept by retries.
     * @type {CredentialSource}
     */
    this._credentials = uploader.credentialsFor(asked);
    /** The object key, once known. @type {string | null} */
    this.key = null;
    /** @type {UploadStatus} */
    this.status = Status.QUEUED;
    /** Chosen when the file is added, kept by retries. @type {UploadPath} */
    this.mode = uploader.pathFor(file, asked);
    /** How much of the file is in OSS or on its way, from 0 to 1. */
    this.fraction = 0;
    this.bytesSent = 0;
    this.speed = 0; // bytes per second during the current attempt
    this.partsTotal = 0;
    this.partsDone = 0;
    this.resumedParts = 0; // parts a checkpoint said were already in OSS
    /** Set when done or rejected (the verdict is `result.data`). @type {UploadResult | null} */
    this.result = null;
    /** Set on error, rejected and unconfirmed. @type {OssgateError | null} */
    this.error = null;
    /**
     * True while the file is stored and ossgate is asked for its verdict (after a failed
     * callback); it can no longer be cancelled then.
     */
    this.confirming = false;
    /** Whether the last attempt asked OSS for a callback (so a verdict is due). */
    this._callback = false;
    /** @type {AliOss.Client | null} */
    this._client = null;
    /** @type {XhrTransport | null} */
    this._transport = null;
    /**
     * The last multipart checkpoint, for a retry without storage.
     * @type {SavedCheckpoint | null}
     */
    this._checkpoint = null;
    this._doneBytes = 0;
    this._inflightBytes = 0;
    this._attemptBase = 0;
    this._attemptStart = 0;
    this._lastEmit = 0;
    this._cancelRequested = false;
    /** @type {(upload: Upload) => void} */
    this._settle = () => {};
    /** @type {Promise<Upload>} */
    this.done = new Promise((resolve) => {
      this._settle = resolve;
    });
  }

  /** Whether cancel() would do anything now. */
  get cancellable() {
    return this.status === Status.QUEUED
      || (this.status === Status.UPLOADING && !this._cancelRequested && !this.confirming);
  }

  /**
   * Failed or cancelled; a file refused by the limits would only be refused again, and so
   * would a rejected one (not retryable) or one whose destination was refused.
   */
  get retryable() {
    const final = this.error !== null && (this.error.kind === 'limits'
      || (this.error.kind === 'denied' && Boolean(this.error.detail.destination)));
    return (this.status === Status.ERROR && !final) || this.status === Status.CANCELLED;
  }

  /**
   * Stop now: requests in flight are aborted, no new part starts. A multipart upload keeps
   * its checkpoint (the parts finished before the cancel), so a retry or a reload resumes it.
   * @returns {boolean}  whether there was anything to cancel
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

  /**
   * Queue again after an error or a cancel (multipart resumes from its checkpoint); `done`
   * is a new promise.
   * @returns {boolean}  whether it was queued again
   */
  retry() {
    if (!this.retryable) return false;
    this.error = null;
    this.result = null;
    this._cancelRequested = false;
    this.done = new Promise((resolve) => {
      this._settle = resolve;
    });
    this._setStatus(Status.QUEUED);
    this.uploader._enqueue(this);
    return true;
  }

  /** @param {UploadStatus} status */
  _setStatus(status) {
    this.status = status;
    this._emit();
  }

  /**
   * A new attempt starts with `doneBytes` already in OSS (parts of a checkpoint).
   * @param {number} doneBytes
   */
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

  /**
   * @param {UploadStatus} status
   * @param {OssgateError | null} [error]
   */
  _finish(status, error = null) {
    this.status = status;
    this.error = error;
    this.confirming = false;
    this._client = null;
    this._transport = null;
    this._emit();
    this._settle(this);
  }
}
