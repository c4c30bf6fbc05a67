"""Object ACLs as OSS keeps them, and the RAM condition key that bounds them.

Sources: OSS API reference PutObjectACL / GetObjectACL / PutObject, the "Object ACL" user guide,
the error pages 0017-00000104 / -105 / -205, the Swift SDK's integration tests (which pin the
live error: ``400 InvalidArgument`` "no such object access control exists", EC 0017-00000104)
and the RAM policy examples ("Prevent public ACL settings for buckets and objects", which denies
``oss:PutObject`` and ``oss:PutObjectAcl`` when ``oss:x-oss-object-acl`` is not ``private`` or
``default``). What they say, and what the emulator therefore does:

- An object's ACL is one of ``default`` (inherit the bucket's; the emulated bucket is private),
  ``private``, ``public-read`` and ``public-read-write``. It is set by ``x-oss-object-acl`` on
  PutObject, InitiateMultipartUpload (kept with the upload and applied by Complete; a header on
  CompleteMultipartUpload, which OSS also accepts, wins), the PostObject form field of the same
  name, CopyObject (the source's ACL is not copied), and PutObjectAcl (``PUT /key?acl``). A new
  object without it is ``default``, also when it replaces an object that had another ACL.
  GetObjectAcl answers ``AccessControlPolicy`` with the object's own value (``default``
  included), as the SDK tests expect.
- Any other value is ``400 InvalidArgument``; on PutObjectAcl a missing or empty header is too
  (EC 0017-00000105).
- An object ACL other than ``default`` takes precedence over the bucket's: an unsigned GET or
  HEAD of a ``public-read`` or ``public-read-write`` object succeeds; of any other object (or of
  a key that does not exist) it is ``403 AccessDenied``, as for the private bucket.
- RAM: the requested ACL is the request's ``oss:x-oss-object-acl`` condition key on PutObject,
  PostObject, InitiateMultipartUpload, CompleteMultipartUpload, CopyObject (its PutObject on the
  target) and PutObjectAcl.

Choices where the references are silent:

- **A request that sends no ACL has no ``oss:x-oss-object-acl`` key** (not the value
  ``default``), so the RAM rule of ``ram_policy`` applies: a condition on a missing key is false
  for every operator. The documented ``Deny ... StringNotEquals oss:x-oss-object-acl
  [private, default]`` therefore lets a plain upload through and stops ``public-read``, while an
  ``Allow`` that requires ``StringEquals ... private`` admits only uploads that send the header.
- Authenticated callers are judged by RAM alone: a ``public-read`` object does not widen what
  STS credentials may read. Anonymous writes (which ``public-read-write`` would allow on OSS)
  are refused: the emulator never lets an unsigned request change data.
"""

from __future__ import annotations

from server.emulator.oss_errors import OSSError

#: Request header and PostObject form field that carry an object's ACL.
ACL_HEADER = "x-oss-object-acl"
#: RAM condition key holding the requested object ACL (RAM policy examples, scenario 10).
ACL_CONDITION_KEY = "oss:x-oss-object-acl"
#: PutObjectACL reference: the four values an object ACL may take.
DEFAULT = "default"
OBJECT_ACLS = (DEFAULT, "private", "public-read", "public-read-write")
#: ACLs that let anyone, signed or not, read the object.
PUBLIC_READ_ACLS = frozenset({"public-read", "public-read-write"})
#: The emulated bucket's own ACL, which ``default`` objects inherit.
BUCKET_ACL = "private"

#: Live message of 0017-00000104 (quoted by the Swift SDK's integration tests).
INVALID_ACL_MESSAGE = "no such object access control exists"
#: Error pages: invalid value on PutObjectAcl, missing value on PutObjectAcl, invalid argument on
#: PutObject (whose example is this header).
EC_INVALID_ACL = "0017-00000104"
EC_MISSING_ACL = "0017-00000105"
EC_INVALID_UPLOAD_ACL = "0017-00000205"


def requested_acl(value: str | None, *, ec: str = EC_INVALID_UPLOAD_ACL) -> str | None:
    """The ACL a write asks for, ``None`` when it asks for none; ``InvalidArgument`` if bad."""
    if value is None:
        return None
    acl = value.strip()
    if acl not in OBJECT_ACLS:
        raise OSSError(
            "InvalidArgument",
            INVALID_ACL_MESSAGE,
            ArgumentName=ACL_HEADER,
            ArgumentValue=value,
            EC=ec,
        )
    return acl


def required_acl(value: str | None) -> str:
    """PutObjectAcl's header, which must be present and valid."""
    if value is None or not value.strip():
        raise OSSError(
            "InvalidArgument",
            INVALID_ACL_MESSAGE,
            ArgumentName=ACL_HEADER,
            ArgumentValue=value or "",
            EC=EC_MISSING_ACL,
        )
    acl = requested_acl(value, ec=EC_INVALID_ACL)
    assert acl is not None
    return acl


def acl_context(acl: str | None) -> dict[str, str]:
    """RAM condition context for a request asking for ``acl`` (empty when it asks for none)."""
    return {} if acl is None else {ACL_CONDITION_KEY: acl}


def effective_acl(object_acl: str) -> str:
    """What governs access to an object: its own ACL, or the bucket's for ``default``."""
    return BUCKET_ACL if object_acl == DEFAULT else object_acl


def readable_anonymously(object_acl: str) -> bool:
    return effective_acl(object_acl) in PUBLIC_READ_ACLS
