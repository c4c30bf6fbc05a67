/** XhrTransport: the HTTP client of every upload, ali-oss's and the form uploads' alike. */

/** Request headers a page may not set (Fetch standard); ali-oss adds Host for IP endpoints. */
const FORBIDDEN_HEADERS = new Set([
  'accept-charset', 'accept-encoding', 'connection', 'content-length', 'cookie', 'date',
  'expect', 'host', 'keep-alive', 'origin', 'referer', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'user-agent', 'via',
]);

/**
 * @param {string} raw  XMLHttpRequest.getAllResponseHeaders()
 * @returns {Record<string, string>}  lower-case names
 */
function parseHeaders(raw) {
  /** @type {Record<string, string>} */
  const headers = {};
  for (const line of raw.trim().split(/[\r\n]+/)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return headers;
}

/**
 * One request, as ali-oss's urllib takes it; `timeout` is an idle timeout in milliseconds.
 * @typedef {object} TransportRequest
 * @property {string} method
 * @property {Record<string, unknown>} [headers]
 * @property {XMLHttpRequestBodyInit | null} [content]
 * @property {number} [timeout]
 */

/**
 * The answer, as ali-oss's urllib gives it (`res` is what ali-oss reads most of it from).
 * @typedef {object} TransportAnswer
 * @property {number} status
 * @property {Record<string, string>} headers
 * @property {string} data
 * @property {object} res
 */

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
  /**
   * @param {object} [options]
   * @param {((request: XMLHttpRequest, loaded: number | null) => void) | null} [options.onProgress]
   *   the bytes of a request's body sent so far, and null once the request settles
   */
  constructor({ onProgress = null } = {}) {
    this.onProgress = onProgress;
    /** @type {Set<XMLHttpRequest>} */
    this.inflight = new Set();
  }

  /**
   * @param {string} url
   * @param {TransportRequest} params
   * @returns {Promise<TransportAnswer>}
   */
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
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let watchdog;
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
      /**
       * @param {string} name
       * @param {number} status
       * @param {string} message
       */
      const fail = (name, status, message) => {
        settle();
        reject(Object.assign(new Error(`${message}, ${params.method} ${url}`), {
          name, status, code: name, requestUrls: [url],
        }));
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

  /** Abort every request in flight (each fails as an aborted RequestError). */
  abortAll() {
    for (const xhr of [...this.inflight]) xhr.abort();
  }
}
