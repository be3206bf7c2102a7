"""The OpenAPI 3 description of the HTTP API, written by hand (served at ``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_spec"]

_QUAD = {
    "type": "array",
    "description": "four [x, y] corners, clockwise from the top-left, in page pixels",
    "minItems": 4,
    "maxItems": 4,
    "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what is wrong"}},
    },
    "Quad": _QUAD,
    "Box": {
        "type": "object",
        "required": ["quad", "score"],
        "properties": {"quad": {"$ref": "#/components/schemas/Quad"}, "score": {"type": "number"}},
    },
    "Word": {
        "type": "object",
        "required": ["quad", "text", "confidence"],
        "properties": {
            "quad": {"$ref": "#/components/schemas/Quad"},
            "text": {"type": "string"},
            "confidence": {"type": "number"},
        },
    },
    "Line": {
        "type": "object",
        "required": ["text", "word_indices"],
        "properties": {
            "text": {"type": "string"},
            "word_indices": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Document": {
        "type": "object",
        "required": ["words", "lines", "text", "width", "height", "timings"],
        "properties": {
            "words": {"type": "array", "items": {"$ref": "#/components/schemas/Word"}},
            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
            "text": {"type": "string", "description": "lines joined with newlines"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "filename", "status_url"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "filename": {"type": "string"},
            "status_url": {"type": "string"},
        },
    },
    "TaskStatus": {
        "type": "object",
        "required": ["id", "state", "progress", "result", "error"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "state": {"type": "string", "enum": ["PENDING", "STARTED", "SUCCESS", "FAILURE"]},
            "progress": {
                "type": "object",
                "required": ["done", "total"],
                "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
            },
            "result": {"oneOf": [{"$ref": "#/components/schemas/Document"}, {"type": "null"}]},
            "error": {"type": ["string", "null"]},
        },
    },
}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return out


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _upload(many: bool) -> dict[str, Any]:
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    field = {"type": "array", "items": file_schema} if many else file_schema
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": {"file": field}},
            }
        },
    }


_THRESHOLDS = [
    (
        "text_threshold",
        {"type": "number", "minimum": 0, "maximum": 1},
        "keep a word if its peak region score is >= this",
    ),
    (
        "link_threshold",
        {"type": "number", "minimum": 0, "maximum": 1},
        "affinity score that joins characters",
    ),
    ("low_text", {"type": "number", "minimum": 0, "maximum": 1}, "region score that counts as text"),
    ("canvas_size", {"type": "integer", "minimum": 32}, "longest side of the detector input"),
    ("mag_ratio", {"type": "number", "exclusiveMinimum": 0}, "magnification before clamping to canvas_size"),
    (
        "split_link",
        {"type": "number", "minimum": 0, "maximum": 1},
        "cut words at text-free gaps whose affinity stays below this (0: off)",
    ),
]


def _threshold_params() -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        for name, schema, text in _THRESHOLDS
    ]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _sync(summary: str, many: bool, params: bool, ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": _threshold_params() if params else [],
            "requestBody": _upload(many),
            "responses": {
                "200": ok,
                "400": _error("bad upload or parameter"),
                "413": _error("request body or image too large"),
                "503": _error("models unavailable"),
            },
        }
    }


def openapi_spec() -> dict[str, Any]:
    """The API description as a JSON-ready dict."""
    paths: dict[str, Any] = {
        "/detection": _sync(
            "Detect text boxes on one page (in-process)",
            False,
            True,
            _json(
                "boxes in reading order",
                {"type": "object", "required": ["boxes"], "properties": {"boxes": _array_of("Box")}},
            ),
        ),
        "/recognition": _sync(
            "Recognise word crops (in-process), one result per file in order",
            True,
            False,
            _json(
                "one result per file",
                {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["text", "confidence"],
                                "properties": {"text": {"type": "string"}, "confidence": {"type": "number"}},
                            },
                        }
                    },
                },
            ),
        ),
        "/ocr": _sync(
            "OCR one page synchronously (in-process)", False, True, _json("the document", _ref("Document"))
        ),
        "/batch_ocr": {
            "post": {
                "summary": "Queue pages for OCR by the workers",
                "requestBody": _upload(True),
                "responses": {
                    "202": _json(
                        "queued, one task per file in order",
                        {
                            "type": "object",
                            "required": ["tasks"],
                            "properties": {"tasks": _array_of("Task")},
                        },
                    ),
                    "400": _error("bad upload (nothing was queued)"),
                    "413": _error("request body or image too large"),
                    "503": _error("broker unavailable, or more than OCR_MAX_BACKLOG documents waiting", retry=True),
                },
            }
        },
        "/tasks/{task_id}": {
            "get": {
                "summary": "State, progress and result of a queued page",
                "parameters": [
                    {
                        "name": "task_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _json("task status", _ref("TaskStatus")),
                    "400": _error("malformed id (not a UUID)"),
                    "404": _error("no task with this id was issued"),
                    "503": _error("result backend unavailable", retry=True),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness, and whether the broker answers",
                "responses": {
                    "200": _json("ok", {"type": "object"}),
                    "503": _error("broker unavailable", retry=True),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ocr-pipeline",
            "version": "1",
            "description": "CRAFT text detection + recognition. Uploads are multipart/form-data in the field `file`.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
