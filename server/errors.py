"""JSON errors: ``{"error": {"code", "message"}}`` for every failure, never a stack trace.

One exception class carries an HTTP status, a stable machine code and a message meant for
the person reading it; the handlers below turn it, Werkzeug's HTTP errors and anything
unexpected into that shape.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class APIError(Exception):
    """A refusal the client should see, with the status and code that describe it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    response = jsonify(error={"code": code, "message": message})
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
        limit = app.config.get("MAX_CONTENT_LENGTH")
        # The raw header, not ``request.content_length``: this runs on every request, and a
        # malformed or chunked length is Werkzeug's to judge when a view reads the body.
        declared = request.environ.get("CONTENT_LENGTH", "")
        if (
            limit is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limit
        ):
            raise RequestEntityTooLarge()


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return error_response(exc.code or 500, _http_code(exc), exc.description or "", headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
