"""Blueprint ``ui``: the upload page (HTML + static JS; the page talks to the JSON API)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

__all__ = ["bp"]

bp = Blueprint("ui", __name__)


@bp.get("/")
def index() -> str:
    """The upload form: pick pages, queue them on /batch_ocr, watch /tasks/<id>, see the result."""
    return render_template(
        "index.html",
        max_files=current_app.config["MAX_FILES"],
        max_mb=int(current_app.config["MAX_CONTENT_LENGTH"]) // (1024 * 1024),
    )
