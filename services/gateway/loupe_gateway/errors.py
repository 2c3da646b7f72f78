"""The one place where failures become HTTP responses, as Custom Vision writes them:
`{"code": "<CustomVisionErrorCode>", "message": "..."}`.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from loupe_common.errors import LoupeError

log = logging.getLogger(__name__)

#: HTTP status -> Custom Vision code for errors raised by routing and Werkzeug itself.
_HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "BadRequestImageSizeBytes",
    415: "UnsupportedMediaType",
}


def error_response(code: str, message: str, status: int):
    response = jsonify({"code": code, "message": message})
    response.status_code = status
    return response


def handle_error(err: Exception):
    """Maps any exception to the Custom Vision error JSON."""
    if isinstance(err, LoupeError):
        if err.http_status >= 500:
            log.warning("%r", err)
        response = error_response(err.code, err.message, err.http_status)
        # Extra headers an error carries, e.g. Retry-After of a 429 (see ratelimit).
        response.headers.update(getattr(err, "headers", None) or {})
        return response
    if isinstance(err, HTTPException):
        status = err.code or 500
        response = error_response(
            _HTTP_CODES.get(status, "Unknown" if status >= 500 else "BadRequest"),
            err.description or err.name,
            status,
        )
        allowed = getattr(err, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response
    log.exception("unhandled error")
    return error_response("Unknown", "An internal error occurred.", 500)


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)
