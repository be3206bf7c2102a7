"""Flask web app (HTTP API and upload form). Never imports torch at import time.

>>> app = create_app({"OCR_CLIENT": fake_client})  # doctest: +SKIP

Run it with ``flask --app web run`` or ``gunicorn 'web:create_app()'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request

from .config import DEFAULTS

__all__ = ["create_app"]


def _security_headers(app: Flask) -> None:
    csp = str(app.config["CONTENT_SECURITY_POLICY"])

    @app.after_request
    def add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.path.startswith(("/tasks/", "/batch_ocr", "/ocr", "/detection", "/recognition")):
            headers.setdefault("Cache-Control", "no-store")
        return response


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app.

    Configuration: :data:`web.config.DEFAULTS`, then ``OCR_WEB_*`` environment variables,
    then ``test_config``. ``OCR_*`` variables configure the OCR library (``Settings``).

    Args:
        test_config: overrides applied last (e.g. ``{"OCR_CLIENT": fake, "TESTING": True}``).

    Returns:
        The Flask app with the ``api``, ``meta`` and ``ui`` blueprints.
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("OCR_WEB")
    if test_config is not None:
        app.config.from_mapping(test_config)

    from . import api, meta, ui
    from .errors import register_error_handlers
    from .monitoring import init_metrics
    from .services import init_services

    init_services(app)
    register_error_handlers(app)
    _security_headers(app)
    init_metrics(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(meta.bp)
    app.register_blueprint(ui.bp)
    return app
