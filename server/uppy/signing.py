"""OSS V4 presigned URLs for the requests ``@uppy/aws-s3`` makes, on the user's STS credentials.

The URL is signed with the credentials of the user's grant (server.credentials.grants), the
ones ``/api/sts-token`` would hand out, so it can do nothing the user's session policy does not
allow; the server's own key never signs anything. Each URL allows one request for a few
minutes. OSS V4 signs the request's ``Content-Type`` whenever one is sent (OSS "V4 signatures
in presigned URLs": ``content-type`` and ``content-md5`` are always canonical headers), so the
URL is signed for the type the browser will send: the file's for PutObject and
InitiateMultipartUpload, ``application/xml`` for Complete (what Uppy sends), none otherwise.

The requests that create an object (PutObject, CompleteMultipartUpload) carry the callback in
their query (``callback``/``callback-var``, OSS "Callback"), with the grant binding, so OSS
calls ``/oss/callback`` and the verdict runs as for every other upload.
"""

from __future__ import annotations

import oss2

from server.bucket.access import oss_endpoint
from server.callbacks.params import query_params, with_s3_reply
from server.config import Settings
from server.credentials.grants import UploadGrant
from server.uppy.requests import (
    ABORT_MULTIPART,
    COMPLETE_MULTIPART,
    CREATE_MULTIPART,
    LIST_PARTS,
    PUT_OBJECT,
    UPLOAD_PART,
    SignRequest,
)

#: How long a signed URL works: long enough for one part over a slow link, short enough that
#: a leaked URL is soon useless.
URL_LIFETIME_SECONDS = 300
#: The type @uppy/aws-s3 sends with CompleteMultipartUpload (XML_CONTENT_TYPE, consts.ts).
COMPLETE_CONTENT_TYPE = "application/xml"


def _user_bucket(grant: UploadGrant, settings: Settings) -> oss2.Bucket:
    credentials = grant.credentials
    auth = oss2.StsAuth(
        credentials.access_key_id,
        credentials.access_key_secret,
        credentials.security_token,
        auth_version=oss2.AUTH_VERSION_4,
    )
    return oss2.Bucket(
        auth, oss_endpoint(settings), grant.destination.bucket, region=settings.region_id
    )


def sign(grant: UploadGrant, settings: Settings, wanted: SignRequest, key: str) -> str:
    """The presigned URL of ``wanted`` at ``key`` (already checked to be the user's)."""
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    operation = wanted.operation
    if operation in (PUT_OBJECT, CREATE_MULTIPART):
        headers["Content-Type"] = wanted.content_type
    if operation == CREATE_MULTIPART:
        params["uploads"] = ""
    if operation in (UPLOAD_PART, LIST_PARTS, COMPLETE_MULTIPART, ABORT_MULTIPART):
        params["uploadId"] = wanted.upload_id or ""
    if operation == UPLOAD_PART:
        params["partNumber"] = str(wanted.part_number)
    if operation == COMPLETE_MULTIPART:
        headers["Content-Type"] = COMPLETE_CONTENT_TYPE
    if operation in (PUT_OBJECT, COMPLETE_MULTIPART) and grant.callback is not None:
        params.update(query_params(with_s3_reply(grant.callback)))
    bucket = _user_bucket(grant, settings)
    return bucket.sign_url(
        wanted.method, key, URL_LIFETIME_SECONDS, headers=headers, params=params, slash_safe=True
    )
