"""Blueprint ``meta``: health check and the API description."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from .errors import unavailable_errors
from .openapi import openapi_spec
from .services import get_client

__all__ = ["bp"]

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int] | Response:
    """Liveness plus a broker check.

    Response 200: ``{"status": "ok", "broker": "ok"}``.

    :statuscode 503: ``{"status": "degraded", "broker": "unavailable", "error": str}`` with
        ``Retry-After``: this process is alive but cannot queue work (/ocr still works).
    """
    try:
        get_client().ping()
    except unavailable_errors() as exc:
        current_app.logger.warning("health check: broker unavailable: %s", exc)
        body = {"status": "degraded", "broker": "unavailable", "error": "the broker does not answer"}
        response = jsonify(body)
        response.headers["Retry-After"] = str(int(current_app.config["RETRY_AFTER"]))
        return response, 503
    return jsonify({"status": "ok", "broker": "ok"})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_spec())
