"""Backup files: a bucket setting saved before OSS replaces it, and read back to restore it.

OSS's ``Put…`` calls for a bucket setting (PutBucketCors…) replace the whole configuration,
so the previous one is written to a local file first and the change is made only once that
file is on disk. A ``BackupFormat`` holds what differs between settings (file name, root
element, size bound); the XML of the setting itself is its own module's business.

Backups are read strictly: a DTD or entity declaration is refused before ElementTree sees
the file, and an oversized file is refused unread.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET  # noqa: S405 - files are screened by _refuse_dtd first
import xml.parsers.expat  # noqa: S408 - used only to detect DOCTYPE/ENTITY before parsing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from server.bucket.errors import BackupError


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->"


@dataclass(frozen=True)
class BackupFormat:
    """How one bucket setting is saved: ``{kind}-backup-{bucket}-{UTC time}.xml`` files whose
    root element is ``root_tag``, at most ``max_bytes`` long; ``label`` names them in errors."""

    kind: str
    label: str
    root_tag: str
    max_bytes: int

    def document(self, root: ET.Element, notes: Sequence[str]) -> bytes:
        """``root`` indented, after an XML declaration and one comment per note."""
        ET.indent(root)
        header = '<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(
            _comment(note) + "\n" for note in notes
        )
        return header.encode() + ET.tostring(root, encoding="utf-8") + b"\n"

    def write(self, data: bytes, bucket_name: str, backup_dir: Path, *, taken_at: datetime) -> Path:
        """Write ``data`` to a new file in ``backup_dir``; never overwrite one.

        The file is created exclusively and flushed to disk before returning, because the
        caller is about to replace the only other copy of this configuration.
        """
        stamp = taken_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{self.kind}-backup-{bucket_name}-{stamp}"
        try:
            backup_dir.mkdir(parents=True, exist_ok=True)
            for attempt in range(100):
                suffix = f"-{attempt}" if attempt else ""
                path = backup_dir / f"{name}{suffix}.xml"
                try:
                    with path.open("xb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                except FileExistsError:
                    continue
                return path
        except OSError as exc:
            raise BackupError(
                f"cannot write the backup in {backup_dir}: {exc.strerror or exc}; nothing was "
                "changed (choose another --backup-dir)"
            ) from None
        raise BackupError(f"too many backups named {name}*.xml")

    def read(self, path: Path) -> ET.Element:
        """The root element of backup ``path``, once size, DTDs and the root tag are checked."""
        root = self._parse(path)
        if root.tag != self.root_tag:
            raise self.invalid(path, f"the root element is <{root.tag}>")
        return root

    def _parse(self, path: Path) -> ET.Element:
        """The root element of ``path``, once its size and the absence of DTDs are checked."""
        try:
            with path.open("rb") as handle:
                data = handle.read(self.max_bytes + 1)
        except OSError as exc:
            raise BackupError(f"cannot read the backup {path}: {exc.strerror or exc}") from None
        if len(data) > self.max_bytes:
            raise self.invalid(path, f"larger than {self.max_bytes} bytes")
        self._refuse_dtd(data, path)
        return ET.fromstring(data)  # noqa: S314 - DTDs and entities refused above

    def invalid(self, path: Path, why: str) -> BackupError:
        """The error for a file that is not one of these backups (``why`` says what is off)."""
        return BackupError(f"{path} is not a {self.label}: {why}")

    def leaf_text(self, element: ET.Element, path: Path) -> str:
        """The text of an element that must hold text only."""
        if len(element):
            raise self.invalid(path, f"<{element.tag}> has child elements")
        return element.text or ""

    def _refuse_dtd(self, data: bytes, path: Path) -> None:
        """Reject DTDs and entity declarations before ElementTree sees a file (no entity
        tricks); a file that is not well-formed XML is refused here too."""

        def forbid(*_args: object) -> NoReturn:
            raise ValueError("DTD or entity declaration")

        parser = xml.parsers.expat.ParserCreate()
        parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = forbid
        parser.EntityDeclHandler = forbid
        parser.UnparsedEntityDeclHandler = forbid
        parser.ExternalEntityRefHandler = forbid
        try:
            parser.Parse(data, True)
        except (ValueError, xml.parsers.expat.ExpatError) as exc:
            raise self.invalid(path, str(exc)) from None


def format_of(path: Path, formats: Sequence[BackupFormat]) -> BackupFormat:
    """Which of ``formats`` backup ``path`` is, by its root element (read as strictly as
    ``BackupFormat.read`` reads), so one ``restore`` command can take any setting's backup."""
    anyone = BackupFormat(
        kind="backup",
        label=" or ".join(f.label for f in formats),
        root_tag="",
        max_bytes=max(f.max_bytes for f in formats),
    )
    tag = anyone._parse(path).tag
    for candidate in formats:
        if candidate.root_tag == tag:
            return candidate
    raise anyone.invalid(path, f"the root element is <{tag}>")
