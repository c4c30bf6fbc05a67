/**
 * ali-oss clients on ossgate's credentials: where a grant's uploads go, and a client whose
 * every request first makes sure the shared credentials are fresh.
 */

import { XhrTransport } from './transport.js';

/** @import { CredentialSource, Grant } from './credentials.js' */

/**
 * The three keys ali-oss's refreshSTSToken must return (nothing else: it merges them in).
 * @param {Grant} grant
 * @returns {AliOss.StsKeys}
 */
function stsKeys(grant) {
  return {
    accessKeyId: grant.accessKeyId,
    accessKeySecret: grant.accessKeySecret,
    stsToken: grant.stsToken,
  };
}

/** @param {string} host */
function isIPv4OrIPv6(host) {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[');
}

/**
 * The origin ali-oss sends a grant's uploads to (its getReqUrl): the bucket in front of the
 * endpoint host unless that host is an IP address; the region's https endpoint without one.
 * @param {Grant} grant
 */
export function ossOrigin(grant) {
  if (!grant.endpoint) {
    const scheme = grant.secure === false ? 'http' : 'https';
    return `${scheme}://${grant.bucket}.${grant.region}.aliyuncs.com`;
  }
  const url = new URL(grant.endpoint.includes('://') ? grant.endpoint
    : `${grant.secure ? 'https' : 'http'}://${grant.endpoint}`);
  return isIPv4OrIPv6(url.hostname) ? url.origin : `${url.protocol}//${grant.bucket}.${url.host}`;
}

/**
 * An ali-oss client on the shared credentials, with the race guard on every request, that
 * sends Blob slices of the file through `transport` (an XhrTransport).
 * @param {AliOss.Constructor} OSS
 * @param {Grant} grant
 * @param {CredentialSource} source
 * @param {number} timeout  ali-oss's request timeout, in milliseconds
 * @param {XhrTransport} [transport]
 * @returns {AliOss.Client}
 */
export function ossClient(OSS, grant, source, timeout, transport = new XhrTransport()) {
  /** @type {AliOss.ClientOptions} */
  const config = {
    region: grant.region,
    bucket: grant.bucket,
    secure: grant.secure !== false,
    ...stsKeys(grant),
    authorizationV4: true,
    refreshSTSToken: async () => stsKeys(await source.refresh()),
    refreshSTSTokenInterval: source.interval(),
    timeout,
  };
  if (grant.endpoint) config.endpoint = grant.endpoint;
  const client = new OSS(config);
  client.urllib = transport;
  // Parts and puts as slices of the File itself: nothing is copied into memory.
  client._createBuffer = async (file, start, end) => file.slice(start, end);
  const request = client.request;
  client.request = async (params) => {
    await source.ensureFresh();
    Object.assign(client.options, stsKeys(/** @type {Grant} */ (source.grant)));
    client.options.refreshSTSTokenInterval = source.interval();
    // ali-oss times its own refresh from here: the shared credentials' age, not this client's.
    client.stsTokenFreshTime = new Date(source.fetchedAt);
    const result = await request.call(client, params);
    if (params.headers && params.headers['x-oss-callback'] && !isJson(result.data)) {
      // ali-oss JSON.parses the callback's answer and would throw on anything else, though
      // the object is stored: make it "no answer", which the Uploader confirms instead.
      result.data = 'null';
    }
    return result;
  };
  return client;
}

/**
 * Whether `data` (a response body) parses as JSON.
 * @param {unknown} data
 */
function isJson(data) {
  try {
    JSON.parse(String(data));
    return true;
  } catch {
    return false;
  }
}
