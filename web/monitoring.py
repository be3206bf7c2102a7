"""Blueprint ``monitoring``: ``GET /metrics`` in the Prometheus text format.

What it serves (``docs/monitoring.md``):

- ``ocr_web_requests_total{method, endpoint, status}`` and ``ocr_web_request_seconds{endpoint}``
  (histogram): every request of this app, by URL rule (``/tasks/<task_id>``, never the raw
  path, so the label set stays small).
- ``ocr_web_documents_submitted_total``: pages queued through ``POST /batch_ocr``.
- ``ocr_queue_depth{queue}``, ``ocr_queue_unacked``, ``ocr_documents_in_flight``,
  ``ocr_redis_up``: read from Redis at scrape time (:class:`ocr_tasks.monitoring.RedisCollector`).

Under gunicorn with several workers the counters of all of them are summed through
``prometheus_client``'s multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory, or leave it unset and a directory per gunicorn master is used. ``METRICS = False``
(``OCR_WEB_METRICS=false``) turns the endpoint and the counting off.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

__all__ = ["bp", "init_metrics"]

bp = Blueprint("monitoring", __name__)

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None
_EXT = "ocr_web_metrics"


def _multiprocess_dir() -> None:
    """Under gunicorn, share one multiprocess directory between the workers of one master."""
    from ocr_tasks.monitoring import use_multiprocess_dir

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        if "gunicorn" not in sys.modules or "gunicorn" not in os.path.basename(sys.argv[0] if sys.argv else ""):
            return  # not a gunicorn worker: this process's own counters
        path = os.path.join(tempfile.gettempdir(), f"ocr-web-metrics-{os.getppid()}")
    os.makedirs(path, exist_ok=True)
    use_multiprocess_dir(path)


def _create() -> dict[str, Any] | None:
    global _metrics
    with _lock:
        if _metrics is None:
            _multiprocess_dir()
            try:
                from prometheus_client import Counter, Histogram
            except ImportError:  # pragma: no cover - the service extra installs it
                return None
            from ocr_tasks.monitoring import SECONDS_BUCKETS

            _metrics = {
                "requests": Counter(
                    "ocr_web_requests", "HTTP requests by method, URL rule and status", ["method", "endpoint", "status"]
                ),
                "latency": Histogram(
                    "ocr_web_request_seconds", "HTTP request latency by URL rule", ["endpoint"], buckets=SECONDS_BUCKETS
                ),
                "submitted": Counter("ocr_web_documents_submitted", "Pages queued through POST /batch_ocr"),
            }
    return _metrics


def init_metrics(app: Flask) -> None:
    """Count requests and register ``/metrics`` (unless ``METRICS`` is false)."""
    if not app.config.get("METRICS", True):
        return
    metrics = _create()
    if metrics is None:
        return
    app.extensions[_EXT] = {"registry": None, "lock": threading.Lock()}

    @app.before_request
    def _start_timer() -> None:
        g.ocr_request_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("ocr_request_started", None)
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics["requests"].labels(request.method, rule, str(response.status_code)).inc()
        if started is not None:
            metrics["latency"].labels(rule).observe(time.perf_counter() - started)
        if request.endpoint == "api.batch_ocr" and response.status_code in (202, 503) and response.is_json:
            tasks = (response.get_json(silent=True) or {}).get("tasks") or []
            if tasks:
                metrics["submitted"].inc(len(tasks))
        return response

    app.register_blueprint(bp)


def _registry() -> Any:
    state = current_app.extensions[_EXT]
    if state["registry"] is None:
        with state["lock"]:
            if state["registry"] is None:
                from ocr_tasks.monitoring import registry

                from .services import get_settings

                settings = get_settings()
                broker = settings.broker
                state["registry"] = registry(
                    store_url=settings.redis_url,
                    broker_url=broker if broker.startswith(("redis://", "rediss://", "unix://")) else None,
                    queues=(settings.detect_queue, settings.recognize_queue, settings.aggregate_queue),
                    page_ttl=settings.page_ttl,
                )
    return state["registry"]


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this web app, plus queue depth and documents in flight from Redis."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(_registry())
    response = Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
