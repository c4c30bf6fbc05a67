/**
 * The Uppy page (`/uppy`): Uppy's Dashboard uploading straight to OSS with `@uppy/aws-s3`,
 * each request signed by ossgate through `uppySigner` (ossgate-upload.js).
 *
 * Sign-in is the upload page's: the demo login (form#login posts to /api/dev/login) or a
 * bearer token a host application left in sessionStorage under `ossgate.token` or posted as
 * `{type: 'ossgate:token', token}` from an origin of data-message-origins. `?destination=NAME`
 * uploads to that destination instead of the default. Files from 8 MiB up are uploaded in
 * parts (Uppy's multipart upload); smaller ones with one PUT.
 *
 * Every file's outcome is also listed in #uppy-results (`data-status` success or error, with
 * the key or the error message), for people and tests alike.
 */

import { uppySigner } from './ossgate-upload.js';

/** The same key as the upload page's (app.js TOKEN_KEY): one sign-in for both pages. */
const TOKEN_KEY = 'ossgate.token';
/** From this size up a file is uploaded in parts (Uppy's default is 100 MiB). */
const MULTIPART_FROM = 8 * 1024 * 1024;

/**
 * The parts of the Uppy bundle (window.Uppy, uppy.min.js) this page uses.
 * @typedef {object} UppyFile
 * @property {string} id
 * @property {string} name
 * @property {string} [type]
 * @property {number | null} [size]
 *
 * @typedef {object} UppyInstance
 * @property {(plugin: unknown, options: object) => UppyInstance} use
 * @property {(event: string, handler: (...args: any[]) => void) => void} on
 * @property {() => UppyFile[]} getFiles
 *
 * @typedef {object} UppyBundle
 * @property {new (options?: object) => UppyInstance} Uppy
 * @property {unknown} Dashboard
 * @property {unknown} AwsS3
 */

/**
 * @param {string} selector
 * @returns {HTMLElement}
 */
const $ = (selector) => /** @type {HTMLElement} */ (document.querySelector(selector));
const config = document.body.dataset;
const messageOrigins = (config.messageOrigins || '').split(/\s+/).filter(Boolean);
const destination = new URLSearchParams(location.search).get('destination');

const token = () => sessionStorage.getItem(TOKEN_KEY);

/**
 * @param {string} kind
 * @param {string} text
 */
function showNotice(kind, text) {
  const notice = $('#notice');
  notice.dataset.kind = kind;
  notice.textContent = text;
  notice.hidden = false;
}

/** @param {number} bytes */
function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The chosen destination's limits, from GET /api/destinations. */
async function showLimits() {
  const base = new URL(config.baseUrl || './', location.href);
  const response = await fetch(new URL('api/destinations', base), {
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (!response.ok) return;
  const listing = await response.json();
  const name = destination || listing.default;
  const chosen = (listing.destinations || []).find(
    (/** @type {{name: string}} */ d) => d.name === name);
  if (chosen) {
    $('#limits').textContent = `${chosen.name}: up to ${size(chosen.maxBytes)} per file · `
      + `${chosen.contentTypes.join(', ')}`;
  }
}

/**
 * Add one line to #uppy-results.
 * @param {UppyFile} file
 * @param {'success' | 'error'} status
 * @param {string} text
 */
function result(file, status, text) {
  let list = document.querySelector('#uppy-results');
  if (!list) {
    list = document.createElement('ul');
    list.id = 'uppy-results';
    list.className = 'queue';
    $('#uploader').append(list);
  }
  const item = document.createElement('li');
  item.dataset.status = status;
  item.dataset.name = file.name;
  item.textContent = `${file.name}: ${text}`;
  list.append(item);
}

let started = false;

function startUppy() {
  if (started) return;
  started = true;
  const bundle = /** @type {UppyBundle | undefined} */ (/** @type {any} */ (window).Uppy);
  if (!bundle) {
    showNotice('sdk', 'The Uppy bundle is missing: run `make` to copy it into static/vendor/.');
    return;
  }
  const uppy = new bundle.Uppy({ autoProceed: false });
  uppy
    .use(bundle.Dashboard, {
      inline: true,
      target: '#uppy-dashboard',
      proudlyDisplayPoweredByUppy: false,
      height: 380,
    })
    .use(bundle.AwsS3, {
      shouldUseMultipart: (/** @type {UppyFile} */ file) => (file.size || 0) >= MULTIPART_FROM,
      signRequest: uppySigner({
        baseUrl: config.baseUrl || null,
        getBearerToken: token,
        destination,
        uppy,
      }),
    });
  uppy.on('upload-success', (/** @type {UppyFile} */ file, /** @type {any} */ response) => {
    result(file, 'success', response && response.body ? response.body.key : '');
  });
  uppy.on('upload-error', (/** @type {UppyFile} */ file, /** @type {Error} */ error) => {
    result(file, 'error', error && error.message ? error.message : String(error));
  });
  /** @type {any} */ (window).ossgateUppy = uppy;
}

async function showSignedIn() {
  $('#sign-in').hidden = true;
  $('#uploader').hidden = false;
  $('#account').hidden = false;
  startUppy();
  await showLimits().catch(() => {});
  document.body.dataset.ready = 'true';
}

function showSignedOut() {
  $('#sign-in').hidden = false;
  $('#uploader').hidden = true;
  $('#account').hidden = true;
}

/** @param {string} value */
function useToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  showSignedIn();
}

/** @param {SubmitEvent} event */
async function logIn(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  /** @param {string} name */
  const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
  const error = $('#login-error');
  error.hidden = true;
  const response = await fetch(/** @type {string} */ (config.loginUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username: field('username'), password: field('password') }),
    cache: 'no-store',
  }).catch(() => null);
  if (!response || !response.ok) {
    error.textContent = response && response.status === 401
      ? 'Wrong user name or password.' : 'Signing in failed; try again.';
    error.hidden = false;
    return;
  }
  form.reset();
  useToken((await response.json()).token);
}

const login = document.querySelector('#login');
if (login) login.addEventListener('submit', (event) => logIn(/** @type {SubmitEvent} */ (event)));
$('#sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
window.addEventListener('message', (event) => {
  if (!messageOrigins.includes(event.origin)) return;
  const data = event.data;
  if (data && data.type === 'ossgate:token' && typeof data.token === 'string' && data.token) {
    useToken(data.token);
  }
});
if (token()) showSignedIn();
else showSignedOut();
