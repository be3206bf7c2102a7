"""Blueprint ``api``: the OCR HTTP API. Each view's docstring is its HTTP reference.

Uploads are ``multipart/form-data`` with the image(s) in the field ``file`` (repeat the field
for several files). Every error is JSON ``{"error": "message"}``; see :mod:`web.errors`.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, url_for

from .config import THRESHOLD_PARAMS
from .errors import APIError, error_response, unavailable_errors
from .services import detector, get_client, get_settings, inference_slot, recognizer
from .uploads import check_params, collect_uploads, decode_upload, read_thresholds

__all__ = ["bp"]

bp = Blueprint("api", __name__)


def _gray(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as the pipeline feeds crops to the recognizer."""
    rgb = image.astype(np.uint32)
    luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000
    return luma.astype(np.uint8)


@bp.post("/detection")
def detection() -> Response:
    """Find text boxes on one page, in this process.

    Request: ``multipart/form-data``, one image in ``file``. Optional query or form parameters
    ``text_threshold``, ``link_threshold``, ``low_text`` (0..1), ``canvas_size`` (integer,
    32..MAX_CANVAS_SIZE), ``mag_ratio`` (> 0).

    Response 200: ``{"boxes": [{"quad": [[x, y] x4], "score": float}]}``, quads clockwise from
    the top-left corner in page pixels, boxes in reading order.

    :statuscode 400: no file, wrong field, several files, empty/corrupt/unsupported file, bad parameter
    :statuscode 413: request body or image pixels over the limit
    :statuscode 503: the detector's weights are not available
    """
    (upload,) = collect_uploads(single=True)
    check_params(THRESHOLD_PARAMS)
    thresholds = read_thresholds()
    image = decode_upload(upload, get_settings())
    from ocr_tasks.pipeline import sort_boxes

    with inference_slot():
        boxes = sort_boxes(detector().detect(image, thresholds or None))
    return jsonify({"boxes": [box.to_dict() for box in boxes]})


@bp.post("/recognition")
def recognition() -> Response:
    """Read the text of word crops, in this process.

    Request: ``multipart/form-data``, one or more crop images in ``file`` (repeat the field;
    at most MAX_FILES). Each crop should hold one word or short line, roughly upright.

    Response 200: ``{"results": [{"text": str, "confidence": float}]}``, one per file, in
    upload order.

    :statuscode 400: no file, wrong field, too many files, empty/corrupt/unsupported file
    :statuscode 413: request body or image pixels over the limit
    :statuscode 503: the recognizer's weights are not available
    """
    uploads = collect_uploads(single=False)
    check_params()
    settings = get_settings()
    crops = [_gray(decode_upload(upload, settings)) for upload in uploads]
    with inference_slot():
        predicted = recognizer().predict(crops)
    if len(predicted) != len(crops):
        raise RuntimeError(f"recognizer returned {len(predicted)} results for {len(crops)} crops")
    results = [{"text": text, "confidence": round(float(conf), 4)} for text, conf in predicted]
    return jsonify({"results": results})


@bp.post("/ocr")
def ocr() -> Response:
    """Read one page synchronously, in this process (detect, crop, recognise, assemble).

    Request: ``multipart/form-data``, one image in ``file``; the same optional detection
    parameters as ``/detection``.

    Response 200: the document (``ocr_tasks.schemas``)::

        {"words": [{"quad": [[x, y] x4], "text": str, "confidence": float}],
         "lines": [{"text": str, "word_indices": [int]}],
         "text": str, "width": int, "height": int, "timings": {stage: seconds}}

    :statuscode 400: no file, wrong field, several files, empty/corrupt/unsupported file, bad parameter
    :statuscode 413: request body or image pixels over the limit
    :statuscode 503: the model weights are not available
    """
    (upload,) = collect_uploads(single=True)
    check_params(THRESHOLD_PARAMS)
    thresholds = read_thresholds()
    image = decode_upload(upload, get_settings())
    from ocr_tasks.pipeline import OCRPipeline

    with inference_slot():
        document = OCRPipeline(detector(), recognizer()).ocr_image(image, thresholds or None)
    return jsonify(document.to_dict())


@bp.post("/batch_ocr")
def batch_ocr() -> tuple[Response, int] | Response:
    """Queue one or more pages for OCR by the workers.

    Request: ``multipart/form-data``, one or more images in ``file`` (repeat the field; at most
    MAX_FILES). Every file is decoded and checked *before* anything is queued, so one bad file
    fails the whole request with 400 and nothing is queued.

    Response 202: ``{"tasks": [{"id": str, "filename": str, "status_url": str}]}``, one per
    file, in upload order. Poll ``status_url`` (``GET /tasks/<id>``).

    :statuscode 400: no file, wrong field, too many files, empty/corrupt/unsupported file
    :statuscode 413: request body or image pixels over the limit
    :statuscode 503: broker unavailable, or more than ``OCR_MAX_BACKLOG`` documents waiting
        (``Retry-After`` set). If it failed after some pages were queued, the body also lists
        those under ``tasks``: they will run.
    """
    uploads = collect_uploads(single=False)
    check_params()
    settings = get_settings()
    for upload in uploads:
        decode_upload(upload, settings)
    client = get_client()
    client.ping()
    check_capacity = getattr(client, "check_capacity", None)
    if check_capacity is not None:  # 503 + Retry-After past OCR_MAX_BACKLOG documents waiting
        check_capacity(len(uploads))
    tasks: list[dict[str, Any]] = []
    for upload in uploads:
        try:
            task_id = client.submit(upload.data, upload.filename)
        except unavailable_errors():
            if not tasks:
                raise
            retry = {"Retry-After": str(int(current_app.config["RETRY_AFTER"]))}
            message = (
                f"the broker became unavailable after {len(tasks)} of {len(uploads)} files were queued; "
                "the queued ones are listed in 'tasks', retry the rest later"
            )
            return error_response(message, 503, retry, tasks=tasks)
        status_url = url_for("api.task_status", task_id=task_id)
        tasks.append({"id": task_id, "filename": upload.filename, "status_url": status_url})
    return jsonify({"tasks": tasks}), 202


@bp.get("/tasks/<task_id>")
def task_status(task_id: str) -> Response:
    """State of a queued page.

    Response 200::

        {"id": str, "state": "PENDING" | "STARTED" | "SUCCESS" | "FAILURE",
         "progress": {"done": int, "total": int},
         "result": document | null, "error": str | null}

    ``result`` is set when ``state`` is SUCCESS, ``error`` when it is FAILURE.

    :statuscode 400: the id is not a UUID
    :statuscode 404: no task with this id was ever issued (or its result has expired)
    :statuscode 503: result backend unavailable (``Retry-After`` set)
    """
    try:
        canonical = str(uuid.UUID(task_id))
    except ValueError as exc:
        raise APIError(f"malformed task id {task_id[:80]!r}: expected a UUID") from exc
    status = get_client().status(canonical)
    if status is None:
        raise APIError(f"no task with id {canonical!r}", 404)
    progress = status.get("progress") or {}
    body = {
        "id": status.get("id", canonical),
        "state": status.get("state", "PENDING"),
        "progress": {"done": int(progress.get("done", 0)), "total": int(progress.get("total", 0))},
        "result": status.get("result"),
        "error": status.get("error"),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
