"""Reading XML request bodies (bucket configuration documents) without trusting them."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - input is pre-screened by refuse_unsafe_xml
import xml.parsers.expat  # noqa: S408 - used only to detect DOCTYPE/ENTITY before parsing
from typing import NoReturn


def refuse_unsafe_xml(body: bytes) -> None:
    """Raise ``ValueError`` for a DTD, an entity declaration or a document expat cannot read.

    Why expat and not a byte search: a byte search for ``<!DOCTYPE`` is defeated by a UTF-16
    document; expat decodes first and reports the declaration whatever the encoding. This is
    what defusedxml does, without the dependency.
    """

    def forbid(*_args: object) -> NoReturn:
        raise ValueError("DTD or entity declaration")

    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.UnparsedEntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as exc:
        raise ValueError(str(exc)) from exc


def parse_untrusted(body: bytes) -> ET.Element:
    """The document's root element; ``ValueError`` for anything unsafe or not XML."""
    refuse_unsafe_xml(body)
    try:
        return ET.fromstring(body)  # noqa: S314 - DTDs and entities refused above
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from exc
