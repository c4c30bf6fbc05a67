/**
 * The upload page: sign-in, file picking, one row per upload, "My uploads".
 *
 * All upload logic lives in ossgate-upload.js; this file only connects it to the DOM.
 *
 * Signing in:
 * - With the demo login (the server renders data-dev-login="true"), form#login posts to
 *   /api/dev/login.
 * - Otherwise the host application hands the page its bearer token, either by writing it to
 *   sessionStorage under `ossgate.token` before the page loads (same origin), or by posting
 *   `{type: 'ossgate:token', token}` to this window from an origin listed in
 *   OSSGATE_CORS_ORIGINS (the page announces itself with `{type: 'ossgate:ready'}` to its
 *   parent or opener, and posts `{type: 'ossgate:session-expired'}` when the token stops
 *   working). The token never goes into a URL.
 *
 * Upload options (multipart threshold, part size, parallelism, refresh interval and margin,
 * see DEFAULTS in upload/options.js) may be overridden by setting
 * `window.ossgateUploadOptions = {...}` before this module runs; the tests and the benchmark
 * do so to use small parts and short intervals.
 *
 * Destinations: when the signed-in user may use more than one of ossgate's destinations
 * (GET /api/destinations), select[name=destination] above the drop zone offers them, each
 * with its limits; the limits line, the pre-send checks and the upload method follow the
 * choice, and each row says where its file went. With one destination the choice is not
 * shown and files go to the server's default, as before destinations existed.
 *
 * Upload method: the select[name=mode] switches between direct uploads with STS credentials
 * and forms signed by the server (/api/post-policy), for the files added afterwards. Its
 * first value is the `mode` option. "Automatic" follows the chosen destination's
 * `formUpload` (off, auto, always) and the page's own `formUpload` / `formUploadTypes`
 * (say `{formUploadTypes: ['image/*']}`), see Uploader.autoRule; when that amounts to
 * "direct" or "form" for every file, the select shows that method and "Automatic" is not
 * offered.
 */

import { MESSAGES, fillText, pickLanguage, translateDocument, translator } from './i18n.js';
import { Mode, Status, Uploader } from './ossgate-upload.js';

/**
 * @import { AutoRule, Destination, DestinationList, Grant, Limits, OssgateError, Upload,
 *   UploaderOptions } from './ossgate-upload.js'
 */

export const TOKEN_KEY = 'ossgate.token';

/**
 * The element of the page's template that `selector` names (the template has them all).
 * @param {string} selector
 */
const $ = (selector) => /** @type {HTMLElement} */ (document.querySelector(selector));
const config = document.body.dataset;
const language = pickLanguage(navigator.languages || [navigator.language]);
const t = translator(language);
const messageOrigins = (config.messageOrigins || '').split(/\s+/).filter(Boolean);
/** @type {Map<Upload, HTMLLIElement>} */
const rows = new Map();
/**
 * The destinations the signed-in user may use, as GET /api/destinations listed them.
 * @type {Destination[]}
 */
let destinations = [];
/**
 * Where the files added now go: the chosen destination's name, or null for the server's
 * default (one destination, or none listed).
 * @type {string | null}
 */
let chosen = null;
/**
 * Dates as the browser's own locale writes them (its first preferred language and region,
 * e.g. de-DE: 02.12.2026, 09:31), which may differ from the page's language (en or zh).
 */
const dateFormat = new Intl.DateTimeFormat(navigator.languages?.[0] || navigator.language, {
  dateStyle: 'medium', timeStyle: 'short',
});

// -- small helpers ----------------------------------------------------------------------------

/**
 * The name a user gave the file: a key's last segment (keys are
 * `<prefix><random folder>/<file name>`, the folder only keeping names from colliding).
 * @param {string} key
 */
export function fileName(key) {
  return key.slice(key.lastIndexOf('/') + 1) || key;
}

/** @param {number | undefined} bytes */
export function formatBytes(bytes) {
  if (bytes === undefined || !Number.isFinite(bytes)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/**
 * A new element; attributes that are null, undefined or false are left out, true ones empty.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number | boolean | null | undefined>} [attributes]
 * @param {string | null} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  if (text !== null) node.textContent = text;
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {{type: string}} message */
function postToHost(message) {
  const targets = [window.parent !== window ? window.parent : null, window.opener].filter(Boolean);
  for (const target of targets) {
    for (const origin of messageOrigins) target.postMessage(message, origin);
  }
}

// -- notices ----------------------------------------------------------------------------------

/**
 * The page-wide message (role=alert); `kind` lets tests and styles tell them apart.
 * @param {string} kind
 * @param {string} text
 */
function showNotice(kind, text) {
  const notice = $('#notice');
  notice.dataset.kind = kind;
  fillText(notice, text);
  notice.hidden = false;
}

/** @param {string | null} [kind]  only a notice of this kind; any when null */
function clearNotice(kind = null) {
  const notice = $('#notice');
  if (kind === null || notice.dataset.kind === kind) {
    notice.hidden = true;
    notice.dataset.kind = '';
    notice.replaceChildren();
  }
}

/**
 * The sentence for an OssgateError, in the page's language.
 * @param {OssgateError | null} error
 */
function describe(error) {
  if (!error) return '';
  // With a choice of destinations, a refusal names the one that refused.
  const destination = destinations.length > 1 ? error.detail.destination : null;
  switch (error.kind) {
    case 'limits':
      if (error.code === 'empty_file') return t('err_empty_file');
      if (error.code === 'type_not_allowed') {
        return t(destination ? 'err_type_not_allowed_to' : 'err_type_not_allowed', {
          type: error.detail.contentType, destination,
        });
      }
      // The server's 413 when the page did not know the limit: its own sentence.
      return typeof error.detail.maxBytes === 'number'
        ? t(destination ? 'err_too_large_to' : 'err_too_large', {
          size: formatBytes(error.detail.size), max: formatBytes(error.detail.maxBytes), destination,
        })
        : t('err_server', { message: error.message });
    case 'cors':
      return error.code === 'cors_expose_etag'
        ? t('err_cors_expose_etag') : t('err_cors', { origin: location.origin });
    case 'session':
      return t('err_session');
    case 'denied':
      if (error.code === 'destination_forbidden' || error.code === 'unknown_destination') {
        return t(`err_${error.code}`, { destination: error.detail.destination });
      }
      return t('err_denied', { code: error.code });
    case 'network':
      return t('err_network');
    case 'rate_limited':
      return t('err_rate_limited', { seconds: error.retryAfter || 60 });
    case 'unavailable':
      return t('err_unavailable');
    case 'credentials':
      return t('err_credentials', { code: error.code });
    case 'rejected':
      // The server's own sentence (what broke, and that the file was removed).
      return t('err_rejected', { message: error.message });
    case 'unconfirmed':
      return t('unconfirmedHelp');
    default:
      return t('err_server', { message: error.message });
  }
}

/** Errors about the whole page (not one file) also go to the notice. */
const PAGE_WIDE = new Set(['cors', 'session', 'network', 'denied', 'unavailable', 'rate_limited']);

// -- the uploader -----------------------------------------------------------------------------

/**
 * The server's form-upload types (OSSGATE_FORM_UPLOAD_TYPES, with OSSGATE_FORM_UPLOAD=auto):
 * which small files go as forms. Whether files go as forms at all is each destination's
 * `formUpload` (off, auto, always; OSSGATE_FORM_UPLOAD without a destinations file), which
 * the uploader learns from GET /api/destinations. window.ossgateUploadOptions still
 * overrides it.
 * @returns {Partial<UploaderOptions>}
 */
function formUploadOptions() {
  const types = (config.formUpload === 'auto' && config.formUploadTypes) || '';
  return types ? { formUploadTypes: types.split(',').filter(Boolean) } : {};
}

const uploader = new Uploader({
  ...formUploadOptions(),
  ...(window.ossgateUploadOptions || {}),
  tokenUrl: config.tokenUrl,
  uploadsUrl: config.uploadsUrl,
  postPolicyUrl: config.postPolicyUrl,
  getBearerToken: token,
});

uploader.addEventListener('session-expired', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  postToHost({ type: 'ossgate:session-expired' });
  showSignedOut();
  showNotice('session', t('err_session'));
});

// -- rows -------------------------------------------------------------------------------------

/** @param {Upload} upload */
function buildRow(upload) {
  const li = element('li', { class: 'upload', id: upload.id });
  const head = element('div', { class: 'row-head' });
  head.append(
    element('span', { class: 'file-name', title: upload.file.name }, upload.file.name),
    element('span', { class: 'file-size' }, formatBytes(upload.file.size)),
  );
  const bar = element('progress', { max: '1', value: '0', 'aria-label': upload.file.name });
  const info = element('div', { class: 'row-info' });
  info.append(
    element('span', { class: 'state', role: 'status' }), // announced; progress and speed not
    element('span', { class: 'method' }, upload.mode === 'form' ? t('method_form') : null),
    element('span', { class: 'destination' }),
    element('span', { class: 'parts' }),
    element('span', { class: 'speed' }),
    element('span', { class: 'record' }),
  );
  const message = element('p', { class: 'message' });
  const actions = element('div', { class: 'actions' });
  const cancel = element('button', {
    type: 'button', class: 'cancel', 'aria-label': t('cancelName', { name: upload.file.name }),
  }, t('cancel'));
  const retry = element('button', {
    type: 'button', class: 'retry', 'aria-label': t('retryName', { name: upload.file.name }),
  }, t('retry'));
  cancel.addEventListener('click', () => upload.cancel());
  retry.addEventListener('click', () => {
    clearNotice();
    upload.retry();
  });
  actions.append(cancel, retry);
  li.append(head, bar, info, message, actions);
  upload.addEventListener('change', () => renderRow(upload));
  return li;
}

/** @param {Upload} upload */
function renderRow(upload) {
  const li = rows.get(upload);
  if (!li) return;
  /** @param {string} selector  of an element buildRow made */
  const part = (selector) => /** @type {HTMLElement} */ (li.querySelector(selector));
  li.dataset.status = upload.status;
  li.dataset.mode = upload.mode;
  if (upload.key) li.dataset.key = upload.key;
  if (upload.destination) li.dataset.destination = upload.destination;
  // Where it went, when there was a choice.
  part('.destination').textContent = destinations.length > 1 && upload.destination
    ? t('rowDestination', { name: upload.destination }) : '';
  part('.state').textContent = t(`status_${upload.status}`);

  const bar = /** @type {HTMLProgressElement} */ (li.querySelector('progress'));
  // Every byte was sent for these three, whatever the verdict.
  bar.value = upload.status === Status.DONE || upload.status === Status.UNCONFIRMED
    || upload.status === Status.REJECTED ? 1 : upload.fraction;

  const parts = part('.parts');
  parts.textContent = upload.mode === 'multipart' && upload.partsTotal
    ? t('parts', { done: upload.partsDone, total: upload.partsTotal }) : '';
  const speed = part('.speed');
  speed.textContent = upload.speed > 0 && upload.status !== Status.QUEUED
    ? t('speed', { rate: formatBytes(upload.speed) }) : '';

  const record = part('.record');
  const data = upload.result && upload.result.data;
  if (upload.status === Status.DONE && data && data.recordId !== undefined) {
    li.dataset.recordId = String(data.recordId);
    record.textContent = t('record', { id: data.recordId });
  } else {
    delete li.dataset.recordId;
    record.textContent = '';
  }

  const message = part('.message');
  let text = '';
  if (upload.error) {
    li.dataset.error = upload.error.kind;
    text = describe(upload.error);
  } else {
    delete li.dataset.error;
    if (upload.status === Status.DONE && !(data && data.recordId !== undefined)) {
      text = t('doneNoCallback');
    } else if (upload.status === Status.UPLOADING && upload.confirming) {
      text = t('confirming');
    } else if (upload.status === Status.UPLOADING && upload._cancelRequested) {
      text = t('cancelling');
    } else if (upload.status === Status.UPLOADING && upload.resumedParts > 0) {
      text = t('resuming', { done: upload.resumedParts, total: upload.partsTotal });
    }
  }
  fillText(message, text);
  message.hidden = !text;

  const cancel = /** @type {HTMLButtonElement} */ (part('.cancel'));
  cancel.hidden = !(upload.status === Status.QUEUED || upload.status === Status.UPLOADING);
  cancel.disabled = !upload.cancellable;
  const retry = part('.retry');
  retry.hidden = !upload.retryable;
  retry.textContent = upload.status === Status.CANCELLED ? t('resume') : t('retry');

  if (upload.error && PAGE_WIDE.has(upload.error.kind)) {
    showNotice(upload.error.code === 'cors_expose_etag' ? 'cors' : upload.error.kind,
      describe(upload.error));
  }
}

/** @param {FileList | null | undefined} files */
function addFiles(files) {
  const list = Array.from(files || []);
  if (list.length === 0 || !token()) return;
  const batch = document.createDocumentFragment(); // newest batch on top, in chosen order
  const added = uploader.add(list, { destination: chosen });
  for (const upload of added) {
    const li = buildRow(upload);
    rows.set(upload, li);
    batch.append(li);
  }
  $('#queue').prepend(batch);
  for (const upload of added) {
    renderRow(upload);
    upload.done.then(() => {
      renderInterrupted();
      if (upload.status === Status.DONE || upload.status === Status.UNCONFIRMED) {
        scheduleUploadsRefresh();
      }
    });
  }
}

// -- upload method ----------------------------------------------------------------------------

/**
 * @param {string} mode  a Mode value
 * @param {AutoRule} rule  what auto mode does for the chosen destination
 */
function modeHelp(mode, rule) {
  const size = formatBytes(uploader.options.multipartThreshold);
  if (mode === Mode.FORM) return t('mode_help_form');
  if (mode === Mode.STS) return t('mode_help_sts', { size });
  if (rule === 'custom') return t('mode_help_auto_custom');
  if (rule === 'small') return t('mode_help_auto_all', { size });
  // Auto is offered only when it differs from both methods: here, with a list of types.
  return t('mode_help_auto_types', {
    size, types: /** @type {string[]} */ (uploader.options.formUploadTypes).join(', '),
  });
}

const modeSelect = /** @type {HTMLSelectElement} */ ($('#upload-mode'));
/** Kept while it is not offered, to put back when another destination makes it mean something. */
const autoOption = /** @type {HTMLOptionElement} */ (modeSelect.querySelector('option[value=auto]'));

/**
 * The method selector for the chosen destination: "Automatic" only when it differs from
 * "direct" and "form"; in auto mode, otherwise, the method it amounts to.
 */
function renderModeSelector() {
  const rule = uploader.autoRule(chosen);
  const offered = rule !== 'direct' && rule !== 'form';
  if (offered && !autoOption.isConnected) modeSelect.prepend(autoOption);
  if (!offered && autoOption.isConnected) autoOption.remove();
  const mode = uploader.options.mode;
  modeSelect.value = mode !== Mode.AUTO || offered ? mode
    : rule === 'form' ? Mode.FORM : Mode.STS;
  fillText($('#mode-help'), modeHelp(modeSelect.value, rule));
}

/** The method selector: its choice applies to the files added after it changes. */
function setUpModeSelector() {
  modeSelect.addEventListener('change', () => {
    uploader.setMode(modeSelect.value);
    renderModeSelector();
  });
  renderModeSelector();
}

// -- destinations -----------------------------------------------------------------------------

/**
 * What a destination takes, for people: "images, PDF files".
 * @param {string[]} contentTypes
 */
function kindsOf(contentTypes) {
  /** @type {Record<string, string>} */
  const kinds = {
    '*/*': 'kind_any', 'image/*': 'kind_image', 'video/*': 'kind_video', 'audio/*': 'kind_audio',
    'text/*': 'kind_text', 'application/pdf': 'kind_pdf',
  };
  return contentTypes.map((type) => (kinds[type] ? t(kinds[type]) : type)).join(t('listSeparator'));
}

/**
 * The limits line (and the file picker's accept list) for `limits`.
 * @param {Limits} limits
 */
function showLimits(limits) {
  const anyType = limits.contentTypes.includes('*/*');
  const types = anyType ? t('anyType') : limits.contentTypes.join(', ');
  $('#limits').textContent = t('limits', { size: formatBytes(limits.maxBytes), types });
  const input = /** @type {HTMLInputElement} */ ($('#file-input'));
  if (anyType) input.removeAttribute('accept');
  else input.accept = limits.contentTypes.join(',');
}

/**
 * What the page shows of a grant: where the user's files go, that destination's limits.
 * @param {Grant} grant
 */
function showGrant(grant) {
  $('#account').hidden = false;
  $('#account-prefix').textContent = t('uploadingAs', { prefix: grant.prefix });
  showLimits(grant.limits);
}

/**
 * The destination choice, from GET /api/destinations: offered when there are two or more
 * (the previous choice kept if it is still there, else the default); hidden otherwise.
 * @param {DestinationList} listing
 */
function setUpDestinations(listing) {
  destinations = listing.destinations;
  const choice = $('#destination-choice');
  const select = /** @type {HTMLSelectElement} */ ($('#upload-destination'));
  const names = destinations.map((d) => d.name);
  if (destinations.length < 2) {
    choice.hidden = true;
    select.replaceChildren();
    // One destination that is not the default (or none at all): name it, or let it fail.
    chosen = destinations.length === 1 && listing.default === null ? names[0] : null;
    return;
  }
  select.replaceChildren(...destinations.map((d) => element('option', { value: d.name },
    t('destinationOption', {
      name: d.name,
      kinds: kindsOf(d.contentTypes),
      size: formatBytes(d.maxBytes),
    }))));
  chosen = chosen !== null && names.includes(chosen) ? chosen
    : listing.default !== null && names.includes(listing.default) ? listing.default : names[0];
  select.value = chosen;
  choice.hidden = false;
}

/** The user chose another destination: its limits and method now, its grant when it comes. */
async function chooseDestination() {
  const select = /** @type {HTMLSelectElement} */ ($('#upload-destination'));
  const name = select.value;
  chosen = name;
  const info = uploader.destinationInfo(name);
  if (info) showLimits(info);
  renderModeSelector();
  renderInterrupted();
  let grant;
  try {
    grant = await uploader.grant(name);
  } catch (err) {
    const error = /** @type {OssgateError} */ (err);
    if (error.kind !== 'session') showNotice(error.kind, describe(error));
    return;
  }
  if (chosen !== name) return; // chosen again meanwhile
  showGrant(grant);
  renderInterrupted();
}

// -- interrupted multipart uploads ------------------------------------------------------------

function renderInterrupted() {
  const running = new Set(uploader.uploads
    .filter((u) => u.status === Status.UPLOADING || u.status === Status.QUEUED)
    .map((u) => u.key));
  const entries = uploader.interrupted(chosen).filter((e) => !running.has(e.key));
  const list = $('#interrupted-list');
  list.replaceChildren();
  for (const entry of entries) {
    const total = Math.ceil(entry.fileSize / entry.partSize);
    const li = element('li', { 'data-key': entry.key });
    li.append(element('span', {}, t('interruptedEntry', {
      name: entry.fileName, size: formatBytes(entry.fileSize), done: entry.doneParts.length, total,
    })));
    const discard = element('button', { type: 'button', class: 'link' }, t('discard'));
    discard.addEventListener('click', async () => {
      discard.disabled = true;
      await uploader.discard(entry);
      renderInterrupted();
    });
    li.append(discard);
    list.append(li);
  }
  $('#interrupted').hidden = entries.length === 0;
}

// -- My uploads -------------------------------------------------------------------------------

/** @type {string | null} */
let nextCursor = null;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let refreshTimer;

function scheduleUploadsRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadUploads(), 150);
}

async function loadUploads(append = false) {
  const body = $('#uploads-body');
  let page;
  try {
    page = await uploader.listUploads({ limit: 20, cursor: append ? nextCursor : null });
  } catch (err) {
    const error = /** @type {OssgateError} */ (err);
    if (error.kind !== 'session') showNotice(error.kind, t('uploadsFailed', { message: error.message }));
    return;
  }
  if (!append) body.replaceChildren();
  const several = destinations.length > 1;
  $('#col-destination').hidden = !several;
  for (const record of page.uploads) {
    const tr = element('tr', {
      'data-record-id': record.id, 'data-key': record.key, 'data-destination': record.destination,
    });
    const when = element('td', { class: 'when-cell' });
    if (record.createdAt) {
      when.append(element('time', { datetime: record.createdAt },
        dateFormat.format(new Date(record.createdAt))));
    }
    tr.append(
      element('td', { class: 'file-cell', title: record.key }, fileName(record.key)),
      element('td', { class: 'destination-cell', hidden: !several }, record.destination || ''),
      element('td', { class: 'num' }, formatBytes(record.size)),
      element('td', {}, record.contentType || ''),
      when,
      element('td', { class: 'num' }, `#${record.id}`),
    );
    body.append(tr);
  }
  nextCursor = page.nextCursor;
  const empty = body.children.length === 0;
  $('#uploads-table').hidden = empty;
  $('#uploads-empty').hidden = !empty;
  $('#more-uploads').hidden = !nextCursor;
}

// -- signed in / out --------------------------------------------------------------------------

function showSignedOut() {
  $('#account').hidden = true;
  $('#uploader').hidden = true;
  $('#my-uploads').hidden = true;
  $('#sign-in').hidden = false;
  const username = /** @type {HTMLInputElement | null} */ (
    document.querySelector('#login input[name=username]'));
  if (username) username.focus();
}

async function showSignedIn() {
  $('#sign-in').hidden = true;
  $('#uploader').hidden = false;
  $('#my-uploads').hidden = false;
  let grant;
  try {
    /** @type {DestinationList} */
    let listing = { destinations: [], default: null };
    try {
      listing = await uploader.destinations();
    } catch (err) {
      // Without the list the page works as with one destination, the server's default.
      if (/** @type {OssgateError} */ (err).kind === 'session') throw err;
    }
    setUpDestinations(listing);
    renderModeSelector();
    grant = await uploader.grant(chosen);
  } catch (err) {
    const error = /** @type {OssgateError} */ (err);
    if (error.kind !== 'session') showNotice(error.kind, describe(error));
    return;
  }
  clearNotice('session');
  showGrant(grant);
  renderInterrupted();
  loadUploads();
  document.body.dataset.ready = 'true';
}

/** @param {string} value  the bearer token */
function useToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  showSignedIn();
}

/** @param {SubmitEvent} event */
async function logIn(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  const error = $('#login-error');
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
  /** @param {string} name */
  const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
  error.hidden = true;
  button.disabled = true;
  button.textContent = t('signingIn');
  try {
    const response = await fetch(/** @type {string} */ (config.loginUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({
        username: field('username'), password: field('password'),
      }),
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      error.textContent = response.status === 401
        ? t('badLogin') : (body.error && body.error.message) || response.statusText;
      error.hidden = false;
      return;
    }
    const { token: bearer } = await response.json();
    form.reset();
    useToken(bearer);
  } catch {
    error.textContent = t('err_network');
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = t('signIn');
  }
}

// -- wiring -----------------------------------------------------------------------------------

function wire() {
  const login = $('#login');
  if (login) login.addEventListener('submit', logIn);
  $('#sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearNotice();
    showSignedOut();
  });

  const input = /** @type {HTMLInputElement} */ ($('#file-input'));
  input.addEventListener('change', () => {
    addFiles(input.files);
    input.value = ''; // choosing the same file again (to resume) fires change again
  });

  const zone = $('#drop-zone');
  // The browser's drag events always carry a DataTransfer (only constructed ones may not).
  /** @param {DragEvent} event */
  const transfer = (event) => /** @type {DataTransfer} */ (event.dataTransfer);
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    transfer(event).dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    addFiles(transfer(event).files);
  });
  // A file dropped beside the zone must not make the browser navigate away from the page.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => event.preventDefault());
  }

  $('#upload-destination').addEventListener('change', chooseDestination);
  $('#refresh-uploads').addEventListener('click', () => loadUploads());
  $('#more-uploads').addEventListener('click', () => loadUploads(true));

  window.addEventListener('offline', () => showNotice('network', t('err_network')));
  window.addEventListener('online', () => clearNotice('network'));

  window.addEventListener('message', (event) => {
    if (!messageOrigins.includes(event.origin)) return;
    const data = event.data;
    if (data && data.type === 'ossgate:token' && typeof data.token === 'string' && data.token) {
      useToken(data.token);
    }
  });
}

function start() {
  translateDocument(document, t, language);
  $('#queue').setAttribute('aria-label', t('queueLabel'));
  setUpModeSelector();
  wire();
  if (typeof window.OSS !== 'function') {
    showNotice('sdk', t('sdkMissing'));
  }
  if (token()) {
    showSignedIn();
  } else {
    showSignedOut();
    postToHost({ type: 'ossgate:ready' });
  }
}

start();

// For people poking at the page from the console (and for tests): the live uploader.
window.ossgatePage = { uploader, language, messages: MESSAGES };
