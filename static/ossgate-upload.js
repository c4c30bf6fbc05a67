/**
 * ossgate-upload.js: browser uploads straight to Alibaba Cloud OSS through an ossgate server.
 *
 * A plain ES module with no page code, so any frontend can import it, from any origin that
 * OSSGATE_CORS_ORIGINS names. It needs the ali-oss browser bundle (window.OSS, or pass `OSS`)
 * and a way to get the user's bearer token:
 *
 *   import { Uploader } from 'https://ossgate.example/static/ossgate-upload.js';
 *   const uploader = new Uploader({ getBearerToken: () => myApp.token });
 *   const [upload] = uploader.add([file]);
 *   upload.addEventListener('change', () => render(upload));  // status, progress, speed
 *   const outcome = await upload.done;                         // the Upload itself
 *
 * What it takes care of:
 * - Where ossgate is: every endpoint (`tokenUrl`, `postPolicyUrl`, `uploadsUrl`, `confirmUrl`,
 *   `destinationsUrl`) is resolved against `baseUrl`, which defaults to the ossgate server the module was loaded
 *   from (its `import.meta.url`), not the page's origin. A copy of the module (npm package,
 *   single file) has no such default: give it `baseUrl` (or absolute endpoints; `confirmUrl`
 *   then follows `uploadsUrl`, `destinationsUrl` `tokenUrl`).
 * - Destinations: ossgate may have several (`avatars`, `docs`), each with its prefix, limits
 *   and form rule. A file goes to the one `uploader.add(files, {destination: 'docs'})` names,
 *   else to the `destination` option, else to the server's default; the name is sent to
 *   /api/sts-token and /api/post-policy. Credentials are cached and refreshed per
 *   destination (a grant for `avatars` is never used for a `docs` upload), and the limits
 *   checked before sending are that destination's. `uploader.destinations()` lists the ones
 *   the user may use (GET `destinationsUrl`) with their limits, for a frontend that offers a
 *   choice. A name ossgate does not know (`unknown_destination`) or that the user's token
 *   does not admit (`destination_forbidden`) fails the upload as a `denied` OssgateError
 *   with the name in `error.detail.destination`; retrying it is pointless, so it is not
 *   retryable.
 * - Credentials: POST /api/sts-token with the bearer token (never in a URL). The answer goes to
 *   ali-oss as is; `refreshSTSToken` fetches a new one on ali-oss's timer, with an interval
 *   below the credential lifetime. ali-oss stamps its refresh time *before* the new token
 *   arrives, so concurrent requests can go out with the old, expired one (a known ali-oss
 *   race). Every request therefore first awaits `CredentialSource.ensureFresh()`: credentials
 *   that expire within `refreshMarginMs` are replaced before use, and all refreshes go through
 *   one in-flight request (single flight), however many uploads ask at once.
 * - Verdicts: the callback parameters of the token answer go into every upload, so ossgate
 *   judges it once it is stored, and the callback's answer becomes `upload.result.data`:
 *   `{status: 'recorded', recordId, …}` (status `done`), or `{status: 'rejected', reason,
 *   message}` when the upload broke a rule of its destination and ossgate removed it (status
 *   `rejected`; `upload.error` is a `rejected` OssgateError with the server's message, its
 *   code the reason; not retryable). A 203 `CallbackFailed` (ossgate was not told) or an
 *   answer that is missing or not JSON makes the Uploader ask for the verdict itself, POST
 *   `confirmUrl` `{key}`, so the upload still ends done or rejected; only when that fails
 *   too (503 or no answer, after a couple of tries) does it stay `unconfirmed`: stored, and
 *   ossgate's sweep judges it shortly.
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
 *   a form for the files `formUpload` / `formUploadTypes` select, or that their
 *   destination's `formUpload` asks for once destinations() described it: `always`, or
 *   `auto` for files below `multipartThreshold`, of `formUploadTypes` when listed;
 *   credentials otherwise; `uploader.autoRule(destination)` says which).
 * - Errors are classified (`OssgateError.kind`): cors, network, session, denied, credentials,
 *   limits, rejected, unconfirmed, cancelled, rate_limited, unavailable, server.
 *
 * Upload statuses: queued, uploading, done, rejected, unconfirmed, error, cancelled.
 *
 * This file is the module's one entry point; the code lives in upload/, one file per
 * concern: options.js (defaults, modes, checks), api.js (ossgate's API), credentials.js,
 * oss.js (ali-oss clients), transport.js (XhrTransport), limits.js, checkpoints.js,
 * errors.js (OssgateError and classification), upload.js (Upload) and uploader.js;
 * uppy.js has `uppySigner`, the `signRequest` of Uppy's `@uppy/aws-s3` (POST /api/uppy/sign).
 */

export { OssgateError } from './upload/errors.js';
export { DEFAULTS, Mode } from './upload/options.js';
export { Status, Upload } from './upload/upload.js';
export { Uploader } from './upload/uploader.js';
export { uppySigner } from './upload/uppy.js';

/** @typedef {import('./upload/credentials.js').Grant} Grant  the /api/sts-token answer */
/** @typedef {import('./upload/errors.js').ErrorKind} ErrorKind  OssgateError.kind */
/** @typedef {import('./upload/options.js').UploaderOptions} UploaderOptions */
/** @typedef {import('./upload/options.js').UploadMode} UploadMode  the `mode` option */
/** @typedef {import('./upload/upload.js').UploadPath} UploadPath  Upload.mode */
/** @typedef {import('./upload/upload.js').UploadResult} UploadResult  Upload.result */
/** @typedef {import('./upload/upload.js').UploadStatus} UploadStatus  Upload.status */
/** @typedef {import('./upload/uploader.js').UploadRecord} UploadRecord  of listUploads() */
/** @typedef {import('./upload/api.js').TokenSource} TokenSource  getBearerToken */
/** @typedef {import('./upload/uploader.js').Destination} Destination  of destinations() */
/** @typedef {import('./upload/uploader.js').DestinationList} DestinationList  destinations() */
/** @typedef {import('./upload/uploader.js').AutoRule} AutoRule  of autoRule() */
/** @typedef {import('./upload/limits.js').Limits} Limits  Grant.limits */
/** @typedef {import('./upload/uppy.js').UppySignerOptions} UppySignerOptions  uppySigner() */
/** @typedef {import('./upload/uppy.js').UppySignRequest} UppySignRequest  signRequest's ask */
/** @typedef {import('./upload/uppy.js').UppySignedRequest} UppySignedRequest  its answer */
