/**
 * The limits of a grant (size, content types), checked in the browser before anything is
 * sent; the server's session policy, form policy and callback still rule.
 */

import { OssgateError } from './errors.js';

/**
 * The `limits` of a grant: the largest file in bytes, and the accepted types (`image/*`).
 * @typedef {object} Limits
 * @property {number} maxBytes
 * @property {string[]} contentTypes
 */

/**
 * Whether `contentType` matches one of `allowed` (`image/*`, `*\/*`, `application/pdf`).
 * @param {string} contentType
 * @param {string[] | null | undefined} allowed  nothing listed allows every type
 */
export function typeAllowed(contentType, allowed) {
  if (!allowed || allowed.length === 0) return true;
  const [main, sub] = contentType.split(';')[0].trim().toLowerCase().split('/');
  if (!main || !sub) return false;
  return allowed.some((pattern) => {
    const [pMain, pSub] = pattern.toLowerCase().split('/');
    return (pMain === '*' || pMain === main) && (pSub === '*' || pSub === sub);
  });
}

/**
 * The content type an upload declares: the file's own, else application/octet-stream.
 * @param {Blob} file
 */
export function contentTypeOf(file) {
  return file.type || 'application/octet-stream';
}

/**
 * The limit a file breaks, as an OssgateError of kind `limits`, or null when it fits.
 * @param {Blob} file
 * @param {Limits | null | undefined} limits
 */
export function checkLimits(file, limits) {
  if (!limits) return null;
  if (typeof limits.maxBytes === 'number' && file.size > limits.maxBytes) {
    return new OssgateError('limits', `The file is larger than the ${limits.maxBytes}-byte limit.`, {
      code: 'too_large',
      detail: { maxBytes: limits.maxBytes, size: file.size },
    });
  }
  const type = contentTypeOf(file);
  if (!typeAllowed(type, limits.contentTypes)) {
    return new OssgateError('limits', `Files of type ${type} are not accepted.`, {
      code: 'type_not_allowed',
      detail: { contentType: type, allowed: limits.contentTypes },
    });
  }
  return null;
}

/**
 * Why a file cannot go as a form, or null: a PostObject policy allows 1 byte at least (its
 * content-length-range), so an empty file has no policy.
 * @param {Blob} file
 */
export function formRefusal(file) {
  if (file.size > 0) return null;
  return new OssgateError('limits', 'An empty file cannot be sent as a form upload.', {
    code: 'empty_file', detail: { size: 0 },
  });
}

/**
 * The refusal of /api/post-policy as a `limits` error when it is about the file (413: too
 * large, 415: type not allowed), so it reads like the same refusal made in the browser.
 * @param {OssgateError} error  from apiFailure
 * @param {Blob} file
 * @param {Limits | null | undefined} limits  of the last grant, if any
 */
export function policyRefusal(error, file, limits) {
  const info = { status: error.status, detail: { serverCode: error.code } };
  if (error.status === 413) {
    return new OssgateError('limits', error.message, {
      ...info,
      code: 'too_large',
      detail: { ...info.detail, size: file.size, maxBytes: (limits && limits.maxBytes) ?? null },
    });
  }
  if (error.status === 415 && error.code === 'unsupported_content_type') {
    return new OssgateError('limits', error.message, {
      ...info,
      code: 'type_not_allowed',
      detail: { ...info.detail, contentType: contentTypeOf(file), allowed: null },
    });
  }
  return error;
}
