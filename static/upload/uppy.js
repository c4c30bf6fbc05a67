/**
 * uppySigner: the `signRequest` option of Uppy's `@uppy/aws-s3` (6.x), signed by ossgate.
 *
 *   import { uppySigner } from 'https://ossgate.example/static/ossgate-upload.js';
 *   const uppy = new Uppy.Uppy().use(Uppy.AwsS3, {
 *     signRequest: uppySigner({ getBearerToken: () => myApp.token, destination: 'docs' }),
 *   });
 *
 * `@uppy/aws-s3` calls `signRequest({method, key, uploadId?, partNumber?})` before each request
 * it sends to the bucket (put object; create multipart, upload part, list parts, complete,
 * abort) and sends the request to the `url` it gets back. This signer forwards each call to
 * POST `<baseUrl>api/uppy/sign` with the bearer token; ossgate answers an OSS V4 presigned URL
 * made with the user's own STS credentials, and for a new upload the key it chose under the
 * user's prefix (`key`), which Uppy then uses for the rest of the upload. ossgate refuses keys
 * outside the user's prefix, adds its callback to the requests that create an object (so each
 * upload is judged and recorded), and refuses to complete a multipart upload over the
 * destination's size limit (Uppy then reports the upload as failed).
 *
 * OSS signs the request's Content-Type, so the URL of a put or a new multipart upload is
 * signed for the type Uppy will send: the file's `type` when the `uppy` option is given (the
 * file is found by the name at the end of the key Uppy proposes, `<uuid>-<name>`), otherwise
 * the type a browser gives a file of that name's extension (`application/octet-stream` for
 * others), which is what Uppy sends for files picked from disk.
 *
 * Pass `uppy` (the Uppy instance) as well: the signer then also sends the file's size, and
 * ossgate refuses a file over the destination's limit before any byte is sent. Without it, a
 * too-large multipart upload is still refused at its completion, but a too-large single PUT
 * is only judged after it is stored: ossgate's verdict removes it, while Uppy, which reads
 * nothing of a successful PUT's answer, reports it uploaded.
 *
 * Errors of ossgate's API reject as OssgateError (see errors.js), which Uppy shows as the
 * file's upload error.
 */

import { apiFailure, bearerToken, reach } from './api.js';
import { servedBase } from './options.js';

/** @import { TokenSource } from './api.js' */

/**
 * What `@uppy/aws-s3` passes to `signRequest` (its s3-client/types.ts, PresignableRequest).
 * @typedef {object} UppySignRequest
 * @property {'PUT' | 'POST' | 'GET' | 'DELETE'} method
 * @property {string} key
 * @property {string} [uploadId]
 * @property {number} [partNumber]
 * @property {number} [expiresIn]
 */

/**
 * What `signRequest` must return: the URL, and the key when the server chose another.
 * @typedef {object} UppySignedRequest
 * @property {string} url
 * @property {string} [key]
 */

/**
 * The part of an Uppy instance the signer reads: its files' names, types and sizes.
 * @typedef {object} UppyFiles
 * @property {() => Array<{name?: string, type?: string, size?: number | null}>} getFiles
 */

/**
 * @typedef {object} UppySignerOptions
 * @property {string | null} [baseUrl]  ossgate's URL; defaults to the ossgate this module was
 *   loaded from (a copy of the module needs it)
 * @property {TokenSource} getBearerToken  the user's bearer token
 * @property {string | null} [destination]  a destination's name; ossgate's default if left out
 * @property {UppyFiles | null} [uppy]  the Uppy instance, to sign each file's exact type
 * @property {typeof fetch} [fetch]
 */

/** The types browsers give files picked from disk, by extension (Chromium's and Firefox's). */
const BROWSER_TYPES = /** @type {Record<string, string>} */ ({
  avif: 'image/avif', bmp: 'image/bmp', gif: 'image/gif', heic: 'image/heic',
  ico: 'image/vnd.microsoft.icon', jpeg: 'image/jpeg', jpg: 'image/jpeg', png: 'image/png',
  svg: 'image/svg+xml', tif: 'image/tiff', tiff: 'image/tiff', webp: 'image/webp',
  mp3: 'audio/mpeg', m4a: 'audio/x-m4a', ogg: 'audio/ogg', wav: 'audio/wav', flac: 'audio/flac',
  mp4: 'video/mp4', m4v: 'video/mp4', mov: 'video/quicktime', webm: 'video/webm',
  mpeg: 'video/mpeg', pdf: 'application/pdf', json: 'application/json', zip: 'application/zip',
  gz: 'application/gzip', tgz: 'application/gzip', xml: 'text/xml', txt: 'text/plain',
  text: 'text/plain', log: 'text/plain', csv: 'text/csv', htm: 'text/html', html: 'text/html',
  css: 'text/css', js: 'text/javascript', mjs: 'text/javascript', md: 'text/markdown',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
});

/** `<uuid>-<name>`: the key `@uppy/aws-s3` proposes (`${crypto.randomUUID()}-${file.name}`). */
const UPPY_KEY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(.+)$/;

/**
 * The file name in a key Uppy proposed.
 * @param {string} key
 */
export function fileNameOf(key) {
  const last = key.slice(key.lastIndexOf('/') + 1);
  const match = UPPY_KEY.exec(last);
  return match ? match[1] : last;
}

/**
 * What the signer can tell ossgate about the file named at the end of `key`: the
 * Content-Type Uppy will send, and the size when the Uppy instance is known.
 * @param {string} key
 * @param {UppyFiles | null} uppy
 * @returns {{filename: string, contentType: string, size?: number}}
 */
export function describeFile(key, uppy) {
  const filename = fileNameOf(key);
  const file = uppy ? uppy.getFiles().find((f) => f.name === filename) : undefined;
  if (file) {
    const described = { filename, contentType: file.type || 'application/octet-stream' };
    return typeof file.size === 'number' ? { ...described, size: file.size } : described;
  }
  const dot = filename.lastIndexOf('.');
  const extension = dot > 0 ? filename.slice(dot + 1).toLowerCase() : '';
  return { filename, contentType: BROWSER_TYPES[extension] || 'application/octet-stream' };
}

/**
 * The operation `@uppy/aws-s3` means by a request (its S3mini.ts).
 * @param {UppySignRequest} request
 * @returns {string | null}
 */
export function operationOf(request) {
  const upload = request.uploadId != null;
  switch (request.method) {
    case 'PUT':
      if (!upload) return 'putObject';
      return request.partNumber != null ? 'uploadPart' : null;
    case 'POST': return upload ? 'completeMultipartUpload' : 'createMultipartUpload';
    case 'GET': return upload ? 'listParts' : null;
    case 'DELETE': return upload ? 'abortMultipartUpload' : null;
    default: return null;
  }
}

/**
 * The `signRequest` function for `@uppy/aws-s3`, signing through ossgate.
 * @param {UppySignerOptions} options
 * @returns {(request: UppySignRequest) => Promise<UppySignedRequest>}
 */
export function uppySigner(options) {
  if (!options || typeof options.getBearerToken !== 'function') {
    throw new TypeError('uppySigner needs getBearerToken: () => the user\'s bearer token');
  }
  const given = options.baseUrl ?? servedBase(new URL('./options.js', import.meta.url).href);
  if (!given) {
    throw new TypeError('uppySigner needs baseUrl, ossgate\'s URL: this copy of the module '
      + 'was not loaded from an ossgate server');
  }
  const page = globalThis.location ? globalThis.location.href : undefined;
  const base = new URL(given, page);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const signUrl = new URL('api/uppy/sign', base).href;
  const fetchImpl = options.fetch || globalThis.fetch.bind(globalThis);
  const events = new EventTarget();

  return async (request) => {
    const operation = operationOf(request);
    /** @type {Record<string, unknown>} */
    const body = {
      method: request.method,
      key: request.key,
      uploadId: request.uploadId,
      partNumber: request.partNumber,
    };
    if (operation) body.operation = operation;
    if (options.destination) body.destination = options.destination;
    if (operation === 'putObject' || operation === 'createMultipartUpload') {
      Object.assign(body, describeFile(request.key, options.uppy || null));
    }
    const token = await bearerToken(options.getBearerToken);
    const response = await reach(fetchImpl, signUrl, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await apiFailure(response, events);
    const signed = await response.json();
    return { url: signed.url, key: signed.key };
  };
}
