"""OSS error responses: the ``<Error>`` XML document and the status code that goes with it.

Shape from the OSS API reference, "Error responses" (help.aliyun.com/document_detail/32005):
``<Error><Code/><Message/><RequestId/><HostId/>…extra fields…</Error>``.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

#: Default HTTP status for each error code the emulator produces.
STATUS_BY_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "AccessForbidden": 403,
    "AccessKeyIdAndSecurityTokenNotMatch": 403,
    "BadRequest": 400,
    "BucketAlreadyExists": 409,
    "CallbackFailed": 203,
    "CORSRuleBeyondLimit": 400,
    "EntityTooLarge": 400,
    "FileAlreadyExists": 409,
    "IncompleteBody": 400,
    "EntityTooSmall": 400,
    "FieldItemTooLong": 400,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidEncryptionAlgorithmError": 400,
    "InvalidObjectName": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidPolicyDocument": 400,
    "InvalidRequest": 400,
    "InvalidSecurityToken": 403,
    "MalformedPOSTRequest": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingArgument": 400,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchBucketOverwriteConfig": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "SecurityTokenExpired": 403,
    "SignatureDoesNotMatch": 403,
    "TooManyBuckets": 400,
    "InternalError": 500,
}


class OSSError(Exception):
    """A refusal with the real OSS code; ``extra`` becomes additional XML elements.

    ``extra`` keeps insertion order so the document reads like the real service's (for
    ``SignatureDoesNotMatch`` the real service adds ``StringToSign`` and friends). ``code``,
    ``message`` and ``status`` are positional-only, so no element name in ``extra`` can land in
    one of them.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        /,
        **extra: str,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)
        self.extra = extra

    def to_xml(self, request_id: str, host_id: str) -> bytes:
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n',
            f"  <Code>{escape(self.code)}</Code>\n",
            f"  <Message>{escape(self.message)}</Message>\n",
            f"  <RequestId>{escape(request_id)}</RequestId>\n",
            f"  <HostId>{escape(host_id)}</HostId>\n",
        ]
        for name, value in self.extra.items():
            parts.append(f"  <{name}>{escape(str(value))}</{name}>\n")
        parts.append("</Error>\n")
        return "".join(parts).encode()
