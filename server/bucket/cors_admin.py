"""Former home of the CORS administration code, now split across ``server.bucket``'s modules.

Only the names that ``tests/browser/`` still imports from here are left; import them from
``server.bucket`` instead. Delete this module once nothing imports it.
"""

from server.bucket import (
    admin_bucket,
    apply_needed_rule,
    is_ossgate_rule,
    load_admin_settings,
    read_cors,
)

__all__ = [
    "admin_bucket",
    "apply_needed_rule",
    "is_ossgate_rule",
    "load_admin_settings",
    "read_cors",
]
