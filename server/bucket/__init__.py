"""The bucket itself: URLs, the server's own access, and bucket setup (CORS, overwrite
protection) commands.

The app uses ``server.bucket.urls`` and ``server.bucket.access`` directly. What is exported
here is the administration API the ``ossgate cors`` commands, ``ossgate demo`` and
``ossgate doctor`` use: settings and the admin key, the failures (all ``BucketAdminError``,
one line each), and the CORS plan, apply, restore and check. Overwrite protection and the
``ossgate bucket`` commands are imported from their modules (they load alibabacloud-oss-v2,
which the app itself does not need).

Modules, generic first (a bucket setting OSS replaces as a whole can reuse them):

- ``errors``: one exception class per failure meaning;
- ``admin_settings``: bucket, region, endpoint and admin key, read before the app exists;
- ``oss_admin``: an oss2 error as one line saying what to check;
- ``oss_v2_admin``: the admin key as an alibabacloud-oss-v2 client, its errors as one line;
- ``backups``: backup files, written exclusively and read strictly;
- ``replace``: show a change as a diff; back up, check nobody changed it, write;

then CORS:

- ``cors_rules``: ossgate's rule, its shape, origins, and OSS's first-match evaluation;
- ``cors_plan``: the merge ``cors apply`` would write, and its diff;
- ``cors_config``: Get/Put/DeleteBucketCors and the CORS backup files;
- ``cors_apply``: ``cors apply`` and ``cors restore``;
- ``preflight``: ``cors check``'s real OPTIONS requests;
- ``cors_cli``: the click commands;

then overwrite protection, and both settings together:

- ``overwrite_rules``: ossgate's rule per destination, and which rule covers a prefix;
- ``overwrite_plan``: the merge ``bucket apply`` would write, and its diff;
- ``overwrite_config``: Get/Put/DeleteBucketOverwriteConfig and its backup files;
- ``bucket_setup``: ``bucket plan``, ``apply`` and ``restore`` over both settings;
- ``bucket_cli``: the ``ossgate bucket`` click commands.
"""

from server.bucket.admin_settings import (
    AdminSettings,
    admin_bucket,
    load_admin_settings,
    read_environment,
)
from server.bucket.cors_apply import RestorePlan, apply_needed_rule, restore_backup
from server.bucket.cors_config import read_cors
from server.bucket.cors_plan import Plan, plan_change, render_diff
from server.bucket.cors_rules import (
    DEFAULT_MAX_AGE,
    is_ossgate_rule,
    origins_from_env,
    parse_origins,
)
from server.bucket.errors import (
    AmbiguousRuleError,
    BackupError,
    BucketAdminError,
    ConcurrentChangeError,
    LimitError,
    OriginError,
    OssAccessError,
    OssUnreachableError,
    SettingsError,
)
from server.bucket.preflight import DEFAULT_PROBE_KEY, CheckReport, KnownRules, check_preflights

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_PROBE_KEY",
    "AdminSettings",
    "AmbiguousRuleError",
    "BackupError",
    "BucketAdminError",
    "CheckReport",
    "ConcurrentChangeError",
    "KnownRules",
    "LimitError",
    "OriginError",
    "OssAccessError",
    "OssUnreachableError",
    "Plan",
    "RestorePlan",
    "SettingsError",
    "admin_bucket",
    "apply_needed_rule",
    "check_preflights",
    "is_ossgate_rule",
    "load_admin_settings",
    "origins_from_env",
    "parse_origins",
    "plan_change",
    "read_cors",
    "read_environment",
    "render_diff",
    "restore_backup",
]
