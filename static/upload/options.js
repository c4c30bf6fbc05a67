/** The options of an Uploader: their defaults, and the checks made once, when it is built. */

/** @import { TokenSource } from './api.js' */
/** @import { Grant } from './credentials.js' */

const MiB = 1024 * 1024;

/** ali-oss's minimum part size (lib/browser/managed-upload.js). */
const MIN_PART_SIZE = 100 * 1024;

/**
 * Where ossgate is when no `baseUrl` is given: the server this file was loaded from, not the
 * page's. Served by ossgate, this file is `<ossgate>/static/upload/options.js`, so ossgate is
 * two folders up (a path prefix such as `https://example.com/ossgate/` is kept): a page on
 * another origin that imports `<ossgate>/static/ossgate-upload.js` talks to that ossgate.
 * A copy of the module (the npm package, the single-file build, a bundler's output) cannot
 * know where ossgate is, so it has no default and needs `baseUrl`.
 * @param {string} moduleUrl  this file's URL (`import.meta.url`)
 * @returns {string | null}  an absolute URL ending in `/`, or null for a copy
 */
export function servedBase(moduleUrl) {
  let url;
  try {
    url = new URL(moduleUrl);
  } catch {
    return null;
  }
  const served = /^(.*\/)static\/upload\/options\.js$/.exec(url.pathname);
  if (!served || (url.protocol !== 'http:' && url.protocol !== 'https:')) return null;
  return new URL(served[1], url).href;
}

/**
 * The options naming one of ossgate's endpoints, resolved against `baseUrl` (relative by
 * default, so a path prefix of `baseUrl` is kept; an absolute URL is taken as is).
 */
const ENDPOINTS = /** @type {const} */ ([
  'tokenUrl', 'uploadsUrl', 'postPolicyUrl', 'confirmUrl', 'destinationsUrl',
]);

/** The `mode` option: how files are sent (see the module comment of ossgate-upload.js). */
export const Mode = Object.freeze({
  AUTO: 'auto', // a form for the files formUpload/formUploadTypes select, else STS
  STS: 'sts', // the browser signs with STS credentials: put, or multipart from the threshold
  FORM: 'form', // a server-signed PostObject form for every file
});

/** @typedef {(typeof Mode)[keyof typeof Mode]} UploadMode */

/** @type {ReadonlySet<string>} */
const MODES = new Set(Object.values(Mode));

/**
 * What an Uploader can be tuned with; DEFAULTS holds the value of each.
 * @typedef {object} UploadSettings
 * @property {string | null} baseUrl
 * @property {string} tokenUrl
 * @property {string} uploadsUrl
 * @property {string} postPolicyUrl
 * @property {string} confirmUrl
 * @property {string} destinationsUrl
 * @property {string | null} destination
 * @property {UploadMode} mode
 * @property {boolean | ((file: File) => boolean)} formUpload
 * @property {string[] | null} formUploadTypes
 * @property {number} multipartThreshold
 * @property {number} partSize
 * @property {number} parallel
 * @property {number} concurrentFiles
 * @property {number} refreshIntervalMs
 * @property {number} refreshMarginMs
 * @property {number} timeoutMs
 * @property {string} checkpointPrefix
 */

/**
 * Every option of an Uploader, as it holds them (`uploader.options`).
 * @typedef {UploadSettings & {
 *   getBearerToken: TokenSource,
 *   OSS: AliOss.Constructor | undefined,
 *   fetch: typeof fetch,
 *   storage: Storage | null,
 *   keyFor: (file: File, grant: Grant) => string,
 * }} UploaderOptions
 */

/** @type {Readonly<UploadSettings>} */
export const DEFAULTS = Object.freeze({
  /**
   * Where ossgate is (`https://ossgate.example/`); every endpoint below is resolved against
   * it. Default: the ossgate server the module was loaded from (see servedBase); a copy of
   * the module has none and must be given one. A relative `baseUrl` is relative to the page.
   */
  baseUrl: servedBase(import.meta.url),
  tokenUrl: 'api/sts-token',
  uploadsUrl: 'api/uploads',
  postPolicyUrl: 'api/post-policy',
  /** Where an upload whose callback failed (203 CallbackFailed) asks for its verdict. */
  confirmUrl: 'api/uploads/confirm',
  /** The destinations the user may use (GET); see Uploader.destinations(). */
  destinationsUrl: 'api/destinations',
  /**
   * Where files go: the name of one of ossgate's destinations (`avatars`, `docs`), or null
   * for the server's default. `uploader.add(files, {destination})` overrides it per call.
   */
  destination: null,
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

/**
 * A key under the user's prefix that keeps the file name last and never collides.
 * @param {File} file
 * @param {Grant} grant
 */
function defaultKeyFor(file, grant) {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) =>
    b.toString(16).padStart(2, '0')).join('');
  // eslint-disable-next-line no-control-regex
  const name = (file.name || 'file').replace(/[\u0000-\u001f\u007f/\\]/g, '_').slice(-200);
  return `${grant.prefix}${random}/${name}`;
}

/**
 * `mode` as a Mode value, or a TypeError naming the ones there are.
 * @param {string} mode
 * @returns {UploadMode}
 */
export function checkMode(mode) {
  if (!MODES.has(mode)) {
    throw new TypeError(`mode must be one of ${[...MODES].join(', ')}, not ${mode}`);
  }
  return /** @type {UploadMode} */ (mode);
}

/**
 * `destination` as a destination's name, or null (the server's default); a TypeError
 * otherwise, so a typo fails when the file is added, not in the middle of an upload.
 * @param {unknown} destination
 * @returns {string | null}
 */
export function checkDestination(destination) {
  if (destination === null || destination === undefined) return null;
  if (typeof destination !== 'string' || !destination) {
    throw new TypeError(`destination must be a destination's name or null, not ${destination}`);
  }
  return destination;
}

/**
 * The options an Uploader is given over the defaults, checked: a mistake fails here, not in
 * the middle of an upload.
 * @param {Partial<UploaderOptions> & {getBearerToken: TokenSource}} options
 * @returns {UploaderOptions}
 */
export function uploaderOptions(options) {
  if (!options || typeof options.getBearerToken !== 'function') {
    throw new TypeError('Uploader needs getBearerToken: () => the bearer token');
  }
  /** @type {UploaderOptions} */
  const resolved = {
    ...DEFAULTS,
    OSS: globalThis.OSS,
    fetch: globalThis.fetch.bind(globalThis),
    storage: globalThis.localStorage || null,
    keyFor: defaultKeyFor,
    ...options,
  };
  if (resolved.partSize < MIN_PART_SIZE) {
    throw new RangeError(`partSize must be at least ${MIN_PART_SIZE} bytes (OSS's minimum)`);
  }
  resolved.mode = checkMode(resolved.mode);
  resolved.destination = checkDestination(resolved.destination);
  resolveEndpoints(resolved);
  const { formUpload, formUploadTypes } = resolved;
  if (typeof formUpload !== 'boolean' && typeof formUpload !== 'function') {
    throw new TypeError('formUpload must be true, false or a function (file) => boolean');
  }
  if (formUploadTypes !== null && !Array.isArray(formUploadTypes)) {
    throw new TypeError("formUploadTypes must be a list of types such as ['image/*']");
  }
  return resolved;
}

/**
 * `baseUrl` as an absolute http(s) URL ending in `/` (a relative one is taken relative to the
 * page), and every endpoint option as an absolute URL against it, in place; a TypeError names
 * the option that cannot be resolved.
 * @param {UploaderOptions} resolved
 */
function resolveEndpoints(resolved) {
  const page = globalThis.location ? globalThis.location.href : undefined;
  /** @type {URL | null} */
  let base = null;
  if (resolved.baseUrl !== null && resolved.baseUrl !== undefined) {
    try {
      base = new URL(resolved.baseUrl, page);
    } catch {
      throw new TypeError(`baseUrl must be ossgate's URL, such as https://ossgate.example/, `
        + `not ${resolved.baseUrl}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError(`baseUrl must be an http or https URL, not ${resolved.baseUrl}`);
    }
    // A folder: 'https://example.com/ossgate' means https://example.com/ossgate/api/...
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    base.search = '';
    base.hash = '';
  }
  resolved.baseUrl = base ? base.href : null;
  if (!base && resolved.confirmUrl === DEFAULTS.confirmUrl) {
    // A copy set up with absolute endpoints before confirmUrl existed keeps working: the
    // confirm is POST <uploads>/confirm on ossgate.
    resolved.confirmUrl = `${String(resolved.uploadsUrl).replace(/\/+$/, '')}/confirm`;
  }
  if (!base && resolved.destinationsUrl === DEFAULTS.destinationsUrl) {
    // Likewise GET /api/destinations, next to the token endpoint.
    try {
      resolved.destinationsUrl = new URL('destinations', resolved.tokenUrl).href;
    } catch {
      // tokenUrl is not absolute either: the loop below names what is missing
    }
  }
  for (const name of ENDPOINTS) {
    const value = resolved[name];
    try {
      resolved[name] = new URL(value, base || undefined).href;
    } catch {
      throw new TypeError(base ? `${name} is not a URL: ${value}`
        : `${name} (${value}) needs baseUrl, ossgate's URL: this copy of ossgate-upload.js `
          + 'was not loaded from an ossgate server, so it cannot tell where ossgate is');
    }
  }
}
