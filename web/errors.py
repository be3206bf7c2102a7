"""The one place where errors become HTTP responses. Every error body is ``{"error": "..."}``.

=====================================================  ======  ====================================
Error                                                  Status  Notes
=====================================================  ======  ====================================
:class:`APIError` (bad field, empty file, bad params)  400     or the status it carries
``ocr_tasks.errors.InvalidImage`` / UnsupportedFormat  400     corrupt, empty, not an image
``ocr_tasks.errors.ImageTooLarge``                     413     too many pixels / bytes in one image
request body over ``MAX_CONTENT_LENGTH``               413
``ocr_tasks.errors.ServiceUnavailable``, Redis/kombu   503     with ``Retry-After``
connection errors
``ocr_tasks.errors.Overloaded`` (OCR_MAX_BACKLOG)      503     with ``Retry-After``, names the limit
``ocr_tasks.errors.ModelError``                        503     model weights missing or unusable
``ocr_tasks.errors.ConfigError``                       503     the server's OCR_* settings cannot run
any other ``HTTPException``                            its own code, JSON body
anything else                                          500     logged with the traceback
=====================================================  ======  ====================================
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ocr_tasks import errors as domain

__all__ = ["APIError", "error_response", "register_error_handlers", "unavailable_errors"]

log = logging.getLogger(__name__)


class APIError(Exception):
    """A client mistake found by the web layer; ``message`` names the problem.

    Args:
        message: what is wrong, written for the API user.
        status: HTTP status (400 unless said otherwise).
        extra: more keys for the JSON body (e.g. tasks already accepted).
    """

    def __init__(self, message: str, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}


def error_response(
    message: str, status: int, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """``{"error": message, **extra}`` with ``status`` and ``headers``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the broker or result backend cannot be reached".

    ``ocr_tasks.errors.ServiceUnavailable`` (raised by ``OCRClient``) plus the raw connection
    errors of redis-py and kombu, in case one escapes the client.
    """
    found: list[type[BaseException]] = []
    service_unavailable = getattr(domain, "ServiceUnavailable", None)
    if isinstance(service_unavailable, type):
        found.append(service_unavailable)
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        found += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # the service extra is not installed: /ocr etc. still work
        pass
    try:
        from kombu.exceptions import OperationalError

        found.append(OperationalError)
    except ImportError:
        pass
    return tuple(found)


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(int(current_app.config.get("RETRY_AFTER", 5)))}


def _on_api_error(exc: APIError) -> Response:
    return error_response(exc.message, exc.status, **exc.extra)


def _on_invalid_image(exc: domain.InvalidImage) -> Response:
    status = 413 if isinstance(exc, domain.ImageTooLarge) else 400
    return error_response(str(exc), status)


def _on_too_large(exc: RequestEntityTooLarge) -> Response:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    if limit is not None and (length is None or length > int(limit)):
        return error_response(f"the request body is larger than the limit of {limit} bytes", 413)
    return error_response("a form field is too large or the form has too many parts", 413)


def _on_unavailable(exc: Exception) -> Response:
    log.warning("task service unavailable: %s", exc)
    log.debug("task service unavailable", exc_info=True)
    return error_response(
        "the task service (broker or result backend) is unavailable; retry later", 503, _retry_after()
    )


def _on_overloaded(exc: domain.ServiceUnavailable) -> Response:
    log.warning("refusing work: %s", exc)
    return error_response(str(exc), 503, _retry_after())


def _on_model_error(exc: domain.ModelError) -> Response:
    log.error("model unavailable: %s", exc, exc_info=True)
    return error_response(
        "the OCR models are not available on this server (weights missing or unusable); see the server log",
        503,
    )


def _on_config_error(exc: domain.ConfigError) -> Response:
    log.error("server misconfigured: %s", exc)
    return error_response(
        "the OCR models cannot run with this server's settings (OCR_* variables); see the server log", 503
    )


def _on_http(exc: HTTPException) -> Response:
    response = error_response(exc.description or exc.name, exc.code or 500)
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _on_unexpected(exc: Exception) -> Response:
    log.error("unhandled error: %s", exc, exc_info=True)
    return error_response("internal server error", 500)


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on ``app``."""
    app.register_error_handler(APIError, _on_api_error)
    app.register_error_handler(domain.InvalidImage, _on_invalid_image)
    app.register_error_handler(RequestEntityTooLarge, _on_too_large)
    app.register_error_handler(domain.ModelError, _on_model_error)
    app.register_error_handler(domain.ConfigError, _on_config_error)
    for exc_type in unavailable_errors():
        app.register_error_handler(exc_type, _on_unavailable)
    app.register_error_handler(domain.Overloaded, _on_overloaded)
    app.register_error_handler(HTTPException, _on_http)
    app.register_error_handler(Exception, _on_unexpected)
