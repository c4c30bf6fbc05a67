"""What can go wrong while administering a bucket, one class per meaning.

Every message is one line that says what to do next; the CLI prints it as click's
``Error: …`` and exits 1, so callers catch ``BucketAdminError`` for "report and stop" and a
subclass only when they handle that one case (``cors check`` goes on without the rules when
they cannot be read, but not when OSS cannot be reached at all).
"""

from __future__ import annotations


class BucketAdminError(Exception):
    """A bucket administration step failed; ``str()`` is one line telling the admin what to do."""


class SettingsError(BucketAdminError):
    """A variable the admin commands need is missing or malformed (the message names it)."""


class OriginError(BucketAdminError):
    """An origin is not ``scheme://host[:port]``, or is a wildcard nobody asked for."""


class LimitError(BucketAdminError):
    """The merged configuration would break an OSS limit; nothing was changed."""


class AmbiguousRuleError(BucketAdminError):
    """Several rules have ossgate's shape, so which one ossgate owns is unknown."""


class ConcurrentChangeError(BucketAdminError):
    """The bucket's configuration changed between planning and writing; nothing was written."""


class BackupError(BucketAdminError):
    """A backup could not be written, or a file is not a readable backup."""


class OssAccessError(BucketAdminError):
    """OSS refused the request (credentials, permission, bucket) or could not be reached."""


class OssUnreachableError(OssAccessError):
    """No answer at all from the endpoint (refused connection, DNS, timeout)."""
