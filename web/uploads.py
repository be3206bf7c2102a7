"""Reading and checking multipart uploads and query/form parameters.

Everything here raises :class:`web.errors.APIError` (400) or the library's ``InvalidImage``
family with a message that names the file and the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import current_app, request

from ocr_tasks.errors import InvalidImage
from ocr_tasks.imaging import decode_image
from ocr_tasks.settings import Settings

from .config import ALLOWED_EXTENSIONS, THRESHOLD_PARAMS
from .errors import APIError

__all__ = ["Upload", "collect_uploads", "check_params", "read_thresholds", "decode_upload"]

FIELD = "file"

#: A directory separator, a ``..`` component or a control character in a client's file name.
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|(^|[/\\])\.\.($|[/\\])")


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its position in the request, client file name and bytes."""

    index: int
    filename: str
    data: bytes

    @property
    def label(self) -> str:
        """How error messages name this file."""
        return f"file {self.index + 1} ({self.filename!r})" if self.filename else f"file {self.index + 1}"


def _extension(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def collect_uploads(*, single: bool) -> list[Upload]:
    """The files of the multipart field ``file``, in request order.

    Args:
        single: the endpoint takes exactly one file.

    Raises:
        APIError: not multipart, no file, a file in another field, an empty file, a file name
            with an extension that is not an image, or more files than allowed.
    """
    if request.mimetype != "multipart/form-data":
        got = request.mimetype or "no body"
        raise APIError(f"send the image as multipart/form-data in the field {FIELD!r} (got {got})")
    parts = [(f.filename or "", f.read()) for f in request.files.getlist(FIELD)]
    # A browser sends an untouched file input as a part with no name and no bytes.
    parts = [(name, data) for name, data in parts if name or data]
    if not parts:
        others = sorted(k for k in request.files.keys() if k != FIELD)
        if FIELD in request.form:
            raise APIError(f"the field {FIELD!r} holds text, not a file (with curl: -F {FIELD}=@page.png)")
        if others:
            raise APIError(
                f"no file in the field {FIELD!r}; the upload came in field(s) {', '.join(map(repr, others))}"
            )
        raise APIError(
            f"no file uploaded; send the image in the multipart field {FIELD!r} (a part whose headers are "
            "not valid UTF-8, such as a file name in another encoding, is not read as a file)"
        )
    max_files = 1 if single else int(current_app.config["MAX_FILES"])
    if len(parts) > max_files:
        hint = " (use /batch_ocr for several pages)" if single else ""
        raise APIError(f"too many files: got {len(parts)}, this endpoint accepts at most {max_files}{hint}")
    uploads = []
    for i, (name, data) in enumerate(parts):
        upload = Upload(index=i, filename=name, data=data)
        if _UNSAFE_NAME.search(name) or name in (".", ".."):
            raise APIError(
                f"{upload.label}: the file name must be a plain name, without directories, '..' or control "
                "characters (uploaded file names are only labels, never paths)"
            )
        ext = _extension(upload.filename)
        if ext and ext not in ALLOWED_EXTENSIONS:
            raise APIError(
                f"{upload.label}: '.{ext}' files are not supported; upload PNG, JPEG, TIFF, BMP, WebP or GIF images"
            )
        if not upload.data:
            raise APIError(f"{upload.label} is empty (0 bytes)")
        uploads.append(upload)
    return uploads


def check_params(allowed: Iterable[str] = ()) -> None:
    """Refuse query or form parameters this endpoint does not know (typos would pass silently)."""
    allowed = set(allowed)
    unknown = sorted({k for k in (*request.args.keys(), *request.form.keys()) if k not in allowed})
    if unknown:
        listed = ", ".join(sorted(allowed)) if allowed else "none"
        raise APIError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; accepted: {listed}")


def _number(name: str, raw: str, *, integer: bool) -> float:
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        kind = "an integer" if integer else "a number"
        raise APIError(f"{name} must be {kind}, got {raw!r}") from exc
    if not math.isfinite(value):
        raise APIError(f"{name} must be a finite number, got {raw!r}")
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def read_thresholds() -> dict[str, Any]:
    """Detection overrides from the query string or form (only those given), validated.

    ``text_threshold``, ``link_threshold``, ``low_text``, ``split_link``: numbers in [0, 1];
    ``canvas_size``: integer in [32, MAX_CANVAS_SIZE]; ``mag_ratio``: number in (0, MAX_MAG_RATIO];
    ``align_short_words``: true/false (also 1/0, yes/no, on/off).

    Raises:
        APIError: a value that is not a number or is out of range, naming the parameter.
    """
    out: dict[str, Any] = {}
    max_canvas = int(current_app.config["MAX_CANVAS_SIZE"])
    max_mag = float(current_app.config["MAX_MAG_RATIO"])
    for name in THRESHOLD_PARAMS:
        values = request.args.getlist(name) + request.form.getlist(name)
        if not values:
            continue
        if len(values) > 1:
            raise APIError(f"{name} was given {len(values)} times; give it once")
        raw = values[0].strip()
        if name == "canvas_size":
            size = int(_number(name, raw, integer=True))
            if not 32 <= size <= max_canvas:
                raise APIError(f"canvas_size must be between 32 and {max_canvas}, got {size}")
            out[name] = size
        elif name == "align_short_words":
            flag = _BOOLEANS.get(raw.lower())
            if flag is None:
                raise APIError(f"{name} must be true or false, got {raw!r}")
            out[name] = flag
        elif name == "mag_ratio":
            ratio = _number(name, raw, integer=False)
            if not 0 < ratio <= max_mag:
                raise APIError(f"mag_ratio must be > 0 and <= {max_mag:g}, got {raw}")
            out[name] = ratio
        else:
            value = _number(name, raw, integer=False)
            if not 0.0 <= value <= 1.0:
                raise APIError(f"{name} must be between 0 and 1, got {raw}")
            out[name] = value
    return out


def decode_upload(upload: Upload, settings: Settings) -> np.ndarray:
    """Decode and validate one upload with the configured caps (RGB ``H x W x 3`` uint8).

    Raises:
        InvalidImage: (or a subclass) with the file named in the message.
    """
    try:
        return decode_image(
            upload.data,
            max_pixels=settings.max_pixels,
            max_side=settings.max_side,
            max_bytes=settings.max_image_bytes,
        )
    except InvalidImage as exc:
        raise type(exc)(f"{upload.label}: {exc}") from exc
