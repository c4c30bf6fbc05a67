"""The bucket itself: URLs, the server's own read access, and bucket setup (CORS) commands.

The app uses ``server.bucket.urls`` and ``server.bucket.access`` directly. What is exported
here is the administration API the ``ossgate cors`` commands, ``ossgate demo`` and
``ossgate doctor`` use: settings and the admin key, the failures (all ``BucketAdminError``,
one line each), and the CORS plan, apply, restore and check.

Modules, generic first (a bucket setting OSS replaces as a whole can reuse them):

- ``errors``: one exception class per failure meaning;
- ``admin_settings``: bucket, region, endpoint and admin key, read before the app exists;
- ``oss_admin``: an oss2 error as one line saying what to check;
- ``backups``: backup files, written exclusively and read strictly;
- ``replace``: show a change as a diff; back up, check nobody changed it, write;

then CORS:

- ``cors_rules``: ossgate's rule, its shape, origins, and OSS's first-match evaluation;
- ``cors_plan``: the merge ``cors apply`` would write, and its diff;
- ``cors_config``: Get/Put/DeleteBucketCors and the CORS backup files;
- ``cors_apply``: ``cors apply`` and ``cors restore``;
- ``preflight``: ``cors check``'s real OPTIONS requests;
- ``cors_cli``: the click commands.
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
