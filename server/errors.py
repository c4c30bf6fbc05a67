"""JSON errors: ``{"error": {"code", "message"}}`` for every failure, never a stack trace.

One exception class carries an HTTP status, a stable machine code and a message meant for
the person reading it; the handlers below turn it, Werkzeug's HTTP errors and anything
unexpected into that shape. The guards that refuse a request before a view could fail on it
(a declared body too large, JSON nested too deep) live here too.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

log = logging.getLogger(__name__)


class APIError(Exception):
    """A refusal the client should see, with the status and code that describe it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        #: More keys of the error object, naming what was refused (``{"destination": …}``).
        self.details = details or {}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
):
    response = jsonify(error={**(details or {}), "code": code, "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def refuse_oversize_requests(app: Flask) -> None:
    """413 any request whose declared body exceeds ``MAX_CONTENT_LENGTH``, read or not.

    Werkzeug enforces the limit only when a view reads the body; this refuses it up front on
    every endpoint, including those that take no body.
    """

    @app.before_request
    def _declared_size() -> None:
        # The raw header, not ``request.content_length``: this runs on every request, and a
        # malformed or chunked length is Werkzeug's to judge when a view reads the body.
        declared = request.environ.get("CONTENT_LENGTH", "")
        if not declared or declared == "0":
            return  # nothing declared (most requests): no config lookup either
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if (
            limit is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limit
        ):
            raise RequestEntityTooLarge()


#: The deepest JSON any request body may be. Every body ossgate takes is a flat object
#: (depth 1); 32 leaves room for any client's wrapping and is far below where Python's
#: recursive parser (and anything that walks the result) runs out of stack.
MAX_JSON_DEPTH = 32
#: What changes the nesting depth, or whether a bracket counts: string quotes, escapes
#: (so an escaped quote does not end a string) and the four brackets.
_JSON_STRUCTURE = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


class JSONTooDeep(ValueError):
    """The document nests arrays or objects deeper than ``MAX_JSON_DEPTH``.

    A ``ValueError``, like every JSON syntax error, so ``request.get_json`` treats it as
    unparsable: ``silent=True`` gives None (each view's 400 ``invalid_request``), otherwise a
    400 Bad Request.
    """


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays/objects inside one another.

    One linear pass, no recursion, stopping at the first bracket past the limit; brackets
    inside strings do not count. Exact for valid JSON; for invalid JSON any answer is fine,
    since the parser refuses it anyway. Bodies with few brackets (all honest ones) are
    answered by two ``str.count`` calls.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    for match in _JSON_STRUCTURE.finditer(text):
        mark = match.group()
        if mark == '"':
            in_string = not in_string
        elif in_string or len(mark) == 2:  # a bracket in a string, or an escape
            continue
        elif mark in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing documents nested deeper than ``MAX_JSON_DEPTH``.

    Installed as ``app.json``, it is what ``request.get_json`` parses with, so every
    endpoint gets the bound at once. Without it ``[[[[…`` ten thousand deep (10 KB, under
    every body cap) made ``json.loads`` raise RecursionError: a 500 on each JSON endpoint.
    The depth is checked before parsing, not caught as RecursionError afterwards, because
    how deep the parser can go depends on the stack the request already uses.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if isinstance(s, bytes | bytearray):
            # As json.loads decodes bytes (UTF-8/16/32 by their first bytes), so the text
            # checked is the text parsed. A decoding error is a ValueError too.
            s = bytes(s).decode(json.detect_encoding(s), "surrogatepass")
        if json_too_deep(s):
            raise JSONTooDeep(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
        return super().loads(s, **kwargs)


def bound_json_depth(app: Flask) -> None:
    """Parse every JSON request body of ``app`` with ``BoundedJSONProvider``."""
    app.json = BoundedJSONProvider(app)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return error_response(exc.code or 500, _http_code(exc), exc.description or "", headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
