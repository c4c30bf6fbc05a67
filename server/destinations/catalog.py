"""The app's destinations: the ``OSSGATE_DESTINATIONS_FILE`` TOML file, or one default.

```toml
default = "avatars"            # used when a request names none

[destinations.avatars]
prefix = "avatars/{user}/"
max_bytes = 5242880
content_types = ["image/*"]

[destinations.docs]
prefix = "docs/{user}/"
max_bytes = 209715200
content_types = ["application/pdf"]
require_claims = { role = ["staff", "admin"] }
```

Each destination has ``prefix`` (required: ``{user}`` once, ending in ``/``, a literal part
before ``{user}``), and optionally ``max_bytes``, ``content_types`` and ``form_upload``
(defaulting to ``OSSGATE_MAX_UPLOAD_BYTES``, ``OSSGATE_ALLOWED_CONTENT_TYPES`` and
``OSSGATE_FORM_UPLOAD``), ``overwrite`` (false), ``require_claims`` ({}) and ``webhook_url``
(where its upload events go; ``OSSGATE_WEBHOOK_URL`` by default). The file is read
once, at start, and every mistake stops the app with a message naming the file, the
destination and the field. Two destinations' prefixes may not overlap, so an object key names
exactly one destination and one owner.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from server.config import (
    ConfigError,
    Settings,
    check_content_types,
    check_prefix_template,
    check_webhook_url,
)
from server.destinations.destination import (
    DEFAULT_DESTINATION,
    FORM_UPLOAD_MODES,
    NAME,
    Destination,
    default_destination,
)

_FIELDS = {
    "prefix", "max_bytes", "content_types", "overwrite", "require_claims", "form_upload",
    "webhook_url",
}  # fmt: skip
#: OSS's largest object (48.8 TB), as for OSSGATE_MAX_UPLOAD_BYTES.
_MAX_BYTES = 48_800 * 1024**3


class UnknownDestination(LookupError):
    """A request named a destination this app does not have."""


@dataclass(frozen=True)
class Destinations:
    """The destinations of one app, by name, with the one used when a request names none."""

    by_name: Mapping[str, Destination]
    default_name: str

    @property
    def default(self) -> Destination:
        return self.by_name[self.default_name]

    def __iter__(self) -> Iterator[Destination]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str | None) -> Destination:
        """The named destination, or the default for None; raise ``UnknownDestination``."""
        if name is None:
            return self.default
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise UnknownDestination(name) from None

    def for_key(self, key: str) -> tuple[Destination, str] | None:
        """The destination whose user prefix holds ``key``, and that user; None if none does.

        Prefixes never overlap (checked at start), so at most one destination matches.
        """
        for destination in self.by_name.values():
            owner = destination.owner_of(key)
            if owner is not None:
                return destination, owner
        return None

    def usable_with(self, claims: Mapping[str, object]) -> list[Destination]:
        """The destinations a caller with these verified claims may use, in file order."""
        return [d for d in self.by_name.values() if d.admits(claims)]


def load_destinations(settings: Settings) -> Destinations:
    """The app's destinations: from ``OSSGATE_DESTINATIONS_FILE``, else one ``default``."""
    if settings.destinations_file is None:
        single = default_destination(settings)
        return Destinations({single.name: single}, single.name)
    return _from_file(Path(settings.destinations_file), settings)


def _from_file(path: Path, settings: Settings) -> Destinations:
    where = f"OSSGATE_DESTINATIONS_FILE {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(document) - {"default", "destinations"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key {sorted(unknown)[0]!r} (use 'default' and "
            "[destinations.NAME] tables)"
        )
    tables = document.get("destinations")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{where}: no destinations; add a [destinations.NAME] table")
    by_name: dict[str, Destination] = {}
    for name, table in tables.items():
        by_name[name] = _destination(f"{where}: destination {name!r}", name, table, settings)
    _check_no_overlap(where, list(by_name.values()), settings)
    default_name = document.get("default")
    if default_name is None:
        if len(by_name) != 1:
            raise ConfigError(
                f"{where}: 'default' is missing; name the destination used when a request "
                "names none"
            )
        default_name = next(iter(by_name))
    if not isinstance(default_name, str) or default_name not in by_name:
        raise ConfigError(f"{where}: default {default_name!r} is not one of its destinations")
    return Destinations(by_name, default_name)


def _destination(where: str, name: str, table: object, settings: Settings) -> Destination:
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where}: the name must be lower-case letters, digits, '_' or '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table ([destinations.{name}])")
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {sorted(unknown)[0]!r} (fields: {', '.join(sorted(_FIELDS))})"
        )
    if "prefix" not in table:
        raise ConfigError(f"{where}: field 'prefix' is required, such as \"{name}/{{user}}/\"")
    prefix = _field(where, table, "prefix", str)
    try:
        check_prefix_template(prefix)
    except ValueError as exc:
        raise ConfigError(f"{where}: field 'prefix' {exc}") from None
    if prefix.startswith("{user}"):
        raise ConfigError(
            f"{where}: field 'prefix' must start with a folder of its own before {{user}}, "
            f'such as "{name}/{{user}}/", so destinations cannot overlap'
        )
    max_bytes = table.get("max_bytes", settings.max_upload_bytes)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise ConfigError(f"{where}: field 'max_bytes' must be a whole number of bytes")
    if not 1 <= max_bytes <= _MAX_BYTES:
        raise ConfigError(f"{where}: field 'max_bytes' must be between 1 and {_MAX_BYTES}")
    types = table.get("content_types", list(settings.allowed_content_types))
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ConfigError(
            f"{where}: field 'content_types' must be a list of types such as [\"image/*\"]"
        )
    try:
        content_types = check_content_types([t.lower() for t in types])
    except ValueError as exc:
        raise ConfigError(f"{where}: field 'content_types' {exc}") from None
    overwrite = _field(where, table, "overwrite", bool, False)
    form_upload = _field(where, table, "form_upload", str, settings.form_upload)
    if form_upload not in FORM_UPLOAD_MODES:
        raise ConfigError(
            f"{where}: field 'form_upload' must be one of {', '.join(FORM_UPLOAD_MODES)}"
        )
    webhook_url = _webhook_url(where, table, settings)
    return Destination(
        name=name,
        bucket=settings.oss_bucket,
        prefix_template=prefix,
        max_bytes=max_bytes,
        content_types=content_types,
        callback=settings.callback,
        overwrite=overwrite,
        require_claims=_claims(where, table.get("require_claims", {})),
        form_upload=form_upload,
        webhook_url=webhook_url,
    )


def _webhook_url(where: str, table: dict, settings: Settings) -> str | None:
    if "webhook_url" not in table:
        return None
    url = _field(where, table, "webhook_url", str)
    try:
        check_webhook_url(url)
    except ValueError as exc:
        raise ConfigError(f"{where}: field 'webhook_url' {exc}") from None
    if settings.webhook_secret is None:
        raise ConfigError(
            f"{where}: field 'webhook_url' is set but OSSGATE_WEBHOOK_SECRET is not: events "
            "are signed with it"
        )
    return url


def _field(where: str, table: dict, name: str, kind: type, default: object = None):
    value = table.get(name, default)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: field {name!r} must be a {kind.__name__}")
    return value


def _claims(where: str, claims: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{role = ["staff", "admin"], tier = "pro"}`` as a hashable, ordered tuple."""
    if not isinstance(claims, dict):
        raise ConfigError(
            f"{where}: field 'require_claims' must be a table: {{ role = [\"staff\"] }}"
        )
    required = []
    for claim, allowed in claims.items():
        values = [allowed] if isinstance(allowed, str) else allowed
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
        ):
            raise ConfigError(
                f"{where}: field 'require_claims' claim {claim!r} must be a string or a "
                "non-empty list of strings"
            )
        required.append((claim, tuple(values)))
    return tuple(required)


def _check_no_overlap(where: str, destinations: list[Destination], settings: Settings) -> None:
    """Refuse two destinations (or a destination and the quarantine) sharing any key."""
    for i, a in enumerate(destinations):
        for b in destinations[i + 1 :]:
            if a.literal_prefix.startswith(b.literal_prefix) or b.literal_prefix.startswith(
                a.literal_prefix
            ):
                raise ConfigError(
                    f"{where}: destinations {a.name!r} ({a.prefix_template}) and {b.name!r} "
                    f"({b.prefix_template}) overlap: give each a folder of its own"
                )
        quarantine = settings.quarantine_prefix
        if quarantine.startswith(a.literal_prefix) or a.literal_prefix.startswith(quarantine):
            raise ConfigError(
                f"{where}: destination {a.name!r} ({a.prefix_template}) overlaps "
                f"OSSGATE_QUARANTINE_PREFIX {quarantine!r}"
            )


__all__ = ["DEFAULT_DESTINATION", "Destinations", "UnknownDestination", "load_destinations"]
