"""The session policy passed to AssumeRole: write access to one prefix and nothing else.

Effective rights are the role's policy ∩ this policy (RAM), so even a role that may do
``oss:*`` hands the browser only: PutObject (which covers multipart initiate, parts and
complete), AbortMultipartUpload and ListParts, on ``bucket/prefix*``. No read, no list, no
delete, no bucket-level action, no PutObjectAcl; and a write that asks for an object ACL other
than ``default`` (``x-oss-object-acl: public-read`` would make the upload readable by anyone)
is denied through the ``oss:x-oss-object-acl`` condition key (OSS "RAM policy" examples:
"prevent public ACL settings"). The key is present only when the request names an ACL, so a
plain upload, which inherits the bucket's ACL, is unaffected.
"""

from __future__ import annotations

import hashlib
import json

#: The actions an uploading browser needs (OSS "RAM policy" action list: multipart
#: operations are authorised as oss:PutObject; abort and list parts have their own).
UPLOAD_ACTIONS = ("oss:PutObject", "oss:AbortMultipartUpload", "oss:ListParts")
#: The only object ACL an upload may ask for: inherit the bucket's (OSS "Object ACL").
ALLOWED_OBJECT_ACL = "default"
#: AssumeRole refuses a Policy longer than 2048 characters (STS API reference).
MAX_POLICY_LENGTH = 2048
_FORBIDDEN = set("*?$") | {chr(c) for c in range(32)} | {"\x7f"}


class PolicyTooLarge(ValueError):
    """The policy would exceed what STS accepts."""


def upload_policy(bucket: str, prefix: str) -> str:
    """Compact JSON of the session policy for ``bucket/prefix*``.

    The prefix must come from a Destination (canonical user key); as a last line of defence,
    a prefix holding a RAM wildcard (``*``, ``?``), a policy variable (``$``), a traversal or a
    control character is refused here rather than widened into a policy.
    """
    if (
        not prefix.endswith("/")
        or prefix.startswith("/")
        or "//" in prefix
        or any(part in (".", "..") for part in prefix.split("/"))
        or _FORBIDDEN & set(prefix + bucket)
    ):
        raise ValueError(f"unsafe prefix for a session policy: {prefix!r}")
    document = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(UPLOAD_ACTIONS),
                "Resource": [f"acs:oss:*:*:{bucket}/{prefix}*"],
            },
            {
                "Effect": "Deny",
                "Action": ["oss:PutObject"],
                "Resource": [f"acs:oss:*:*:{bucket}/{prefix}*"],
                "Condition": {"StringNotEquals": {"oss:x-oss-object-acl": [ALLOWED_OBJECT_ACL]}},
            },
        ],
    }
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > MAX_POLICY_LENGTH:
        raise PolicyTooLarge(f"session policy is {len(text)} characters (max {MAX_POLICY_LENGTH})")
    return text


def policy_fingerprint(policy: str) -> str:
    """A short stable id of a policy, for cache keys (same user, same policy → same entry)."""
    return hashlib.sha256(policy.encode()).hexdigest()[:16]
