/**
 * Short-lived upload credentials from ossgate (POST /api/sts-token) for one destination,
 * shared by every upload of an Uploader to it, refreshed before they expire through one
 * request at a time.
 */

import { apiFailure, bearerToken, reach } from './api.js';

/** @import { TokenSource } from './api.js' */

/**
 * The /api/sts-token answer: STS credentials for the user's prefix in one destination, where
 * to upload, the callback parameters and that destination's limits (server/credentials/api.py).
 * @typedef {object} Grant
 * @property {string} accessKeyId
 * @property {string} accessKeySecret
 * @property {string} stsToken
 * @property {string} expiration  ISO 8601, on the server's clock
 * @property {string} region
 * @property {string} bucket
 * @property {string | null} endpoint
 * @property {boolean} secure
 * @property {string} [destination]  the destination's name (the default's, when none was asked)
 * @property {string} prefix  every key of the user in this destination starts with it
 * @property {AliOss.Callback | null} callback
 * @property {import('./limits.js').Limits} limits
 */

/**
 * The credentials of one destination (`destination`; null: the server's default): a grant
 * for `avatars` is never used for `docs`, whose session policy allows another prefix.
 * `grant` is the last /api/sts-token answer; `expiresAt` its expiry on *this* browser's clock
 * (from the lifetime the server stated, so a skewed local clock does not matter). Events:
 * `refresh` (detail: the new grant) and `session-expired` (detail: the OssgateError).
 */
export class CredentialSource extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.tokenUrl
   * @param {TokenSource} options.getBearerToken
   * @param {typeof fetch} options.fetch
   * @param {number} options.refreshMarginMs
   * @param {number} options.refreshIntervalMs
   * @param {string | null} [options.destination]  null or absent: the server's default
   */
  constructor({
    tokenUrl, getBearerToken, fetch, refreshMarginMs, refreshIntervalMs, destination = null,
  }) {
    super();
    this.tokenUrl = tokenUrl;
    /** @type {string | null} */
    this.destination = destination;
    this.getBearerToken = getBearerToken;
    this.fetch = fetch;
    this.refreshMarginMs = refreshMarginMs;
    this.refreshIntervalMs = refreshIntervalMs;
    /** @type {Grant | null} */
    this.grant = null;
    this.fetchedAt = 0;
    this.expiresAt = 0;
    this.fetches = 0;
    /** @type {Promise<Grant> | null} */
    this._inflight = null;
  }

  /**
   * Current credentials, fetched or refreshed first when missing or about to expire.
   * @returns {Promise<Grant>}
   */
  async current() {
    await this.ensureFresh();
    return /** @type {Grant} */ (this.grant);
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

  /**
   * Fetch new credentials; concurrent callers share one request.
   * @returns {Promise<Grant>}
   */
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

  /** @returns {Promise<Grant>} */
  async _fetch() {
    const token = await bearerToken(this.getBearerToken, 401);
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    /** @type {RequestInit} */
    const init = { method: 'POST', headers, cache: 'no-store', credentials: 'same-origin' };
    if (this.destination !== null) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify({ destination: this.destination });
    }
    const response = await reach(this.fetch, this.tokenUrl, init);
    this.fetches += 1;
    if (!response.ok) throw await apiFailure(response, this);
    /** @type {Grant} */
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
