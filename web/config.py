"""Default configuration of the web app.

Every value can be overridden, in this order (later wins):

1. the defaults below;
2. ``OCR_WEB_<NAME>`` environment variables (Flask's ``from_prefixed_env``: values are parsed as
   JSON when they can be, so ``OCR_WEB_MAX_FILES=5`` is the integer 5);
3. the ``test_config`` mapping passed to :func:`web.create_app`.

The OCR library's own settings (model directory, Redis URL, pixel caps, ...) come from the
``OCR_*`` variables through :class:`ocr_tasks.settings.Settings`; ``OCR_SETTINGS`` below can
replace or amend them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS", "ALLOWED_EXTENSIONS", "THRESHOLD_PARAMS"]

#: File name extensions accepted for uploads (lower case, without the dot). A file with no
#: extension is accepted and judged by its content; the content is always checked.
ALLOWED_EXTENSIONS: frozenset[str] = frozenset(
    {
        "png",
        "jpg",
        "jpeg",
        "jpe",
        "jfif",
        "tif",
        "tiff",
        "bmp",
        "dib",
        "webp",
        "gif",
        "pbm",
        "pgm",
        "ppm",
        "pnm",
        "mpo",
    }
)

#: Detection overrides accepted as query or form parameters on /detection and /ocr.
THRESHOLD_PARAMS: tuple[str, ...] = (
    "text_threshold",
    "link_threshold",
    "low_text",
    "canvas_size",
    "mag_ratio",
    "align_short_words",
    "split_link",
)

DEFAULTS: dict[str, Any] = {
    #: Largest request body in bytes (all files together); larger requests get 413.
    "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
    #: Most files in one request (/recognition, /batch_ocr); more get 400.
    "MAX_FILES": 20,
    #: Largest ``canvas_size`` a client may ask for (the detector's input side, memory bound).
    "MAX_CANVAS_SIZE": 4096,
    #: Largest ``mag_ratio`` a client may ask for.
    "MAX_MAG_RATIO": 10.0,
    #: Seconds sent in ``Retry-After`` when the broker or result backend is unreachable.
    "RETRY_AFTER": 5,
    #: How many in-process model calls (/ocr, /detection, /recognition) may run at once in one
    #: web process; further requests wait for a slot.
    "INFERENCE_SLOTS": 1,
    #: An object with the ``OCRClient`` interface (submit/status/ping). None: build
    #: ``ocr_tasks.client.OCRClient(settings)`` on first use.
    "OCR_CLIENT": None,
    #: ``ocr_tasks.settings.Settings``, or a mapping of field overrides applied on top of
    #: ``Settings.from_env()``, or None for ``Settings.from_env()`` as is.
    "OCR_SETTINGS": None,
    #: Serve ``GET /metrics`` (Prometheus) and count requests (web/monitoring.py).
    "METRICS": True,
    #: Extra ``Content-Security-Policy`` value; the default allows only the app's own files.
    "CONTENT_SECURITY_POLICY": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}
