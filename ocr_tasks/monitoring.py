"""Prometheus metrics of the service: what the workers and the web app count, and how they serve it.

Nothing here imports :mod:`prometheus_client` at import time, and every recording function is
a no-op until :func:`enable` ran (or when ``prometheus_client`` is not installed), so the task
code calls them unconditionally.

Workers (``workers/detect.py``, ``workers/recognize.py``) call :func:`prepare_multiprocess`
at import, *before* the prefork pool forks and before ``prometheus_client`` is imported, then
:func:`serve` once the worker is ready: one HTTP endpoint per worker on
``OCR_METRICS_PORT`` (or ``OCR_DETECT_METRICS_PORT`` / ``OCR_RECOGNIZE_METRICS_PORT``, which
win, so one environment can start both workers), aggregating every pool process through
``prometheus_client``'s multiprocess mode. The web app serves ``GET /metrics`` itself
(``web/monitoring.py``).

Worker metrics:

- ``ocr_recognize_batch_size`` (histogram): crops per recognizer call (one flush).
- ``ocr_recognize_batch_flushes_total{cause}``: flushes by cause, ``size`` (the cap
  ``OCR_BATCH_SIZE`` was reached) or ``timeout`` (``OCR_BATCH_TIMEOUT`` elapsed first).
- ``ocr_recognize_batch_seconds`` (histogram): recognizer time per flush.
- ``ocr_recognize_crops_total``: crops recognised.
- ``ocr_stage_seconds{stage}`` (histogram): per document, ``queue_wait``, ``detect``,
  ``recognize``, ``aggregate``, ``total`` (the document's ``timings``).
- ``ocr_documents_total{outcome}``: documents finished (``success``) or failed in detection
  (``failure``).
- ``ocr_detect_boxes`` (histogram): boxes per page.

Read from Redis at scrape time (workers and web, :class:`RedisCollector`):

- ``ocr_queue_depth{queue}``: messages waiting in each broker queue (detect, recognize, aggregate).
- ``ocr_queue_unacked``: messages delivered to workers and not acknowledged yet (prefetched
  crops waiting in a batch buffer, running tasks).
- ``ocr_documents_in_flight``: documents uploaded and not yet assembled (their page is still
  held in Redis; see :class:`~ocr_tasks.storage.PageStore`).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "STAGES",
    "enable",
    "enabled",
    "metrics_port",
    "prepare_multiprocess",
    "use_multiprocess_dir",
    "serve",
    "registry",
    "mark_process_dead",
    "observe_batch",
    "observe_detect",
    "observe_document",
    "count_failure",
    "RedisCollector",
    "setup_worker",
]

log = logging.getLogger(__name__)

#: Document stages observed in ``ocr_stage_seconds``.
STAGES = ("queue_wait", "detect", "recognize", "aggregate", "total")

#: Buckets of the batch size histogram (crops).
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 150, 200, 250, 300, 350, 400, 500, 700, 1000, 2000)
#: Buckets of the latency histograms (seconds).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None


def metrics_port(role: str, environ: Mapping[str, str] | None = None) -> int | None:
    """The metrics port of worker ``role`` ("detect", "recognize"): ``OCR_<ROLE>_METRICS_PORT``,
    else ``OCR_METRICS_PORT``; None when unset or empty (metrics off).

    Raises:
        ValueError: not an integer port.
    """
    env = os.environ if environ is None else environ
    for var in (f"OCR_{role.upper()}_METRICS_PORT", "OCR_METRICS_PORT"):
        raw = (env.get(var) or "").strip()
        if raw:
            try:
                port = int(raw)
            except ValueError as exc:
                raise ValueError(f"{var}={raw!r} is not a port number") from exc
            if not 0 < port < 65536:
                raise ValueError(f"{var}={port} is not a port number")
            return port
    return None


def prepare_multiprocess(prefix: str = "ocr-metrics-") -> str:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory; call before forking and before
    any metric is created in this process. Returns the directory.

    A directory already set in the environment is kept (and created if missing); otherwise a
    fresh temporary one is made, so every process forked from here writes its samples there.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if path:
        os.makedirs(path, exist_ok=True)
    else:
        path = tempfile.mkdtemp(prefix=prefix)
    use_multiprocess_dir(path)
    return path


def use_multiprocess_dir(path: str) -> None:
    """Switch this process to ``prometheus_client``'s multiprocess mode with ``path``.

    ``prometheus_client`` picks its value class when it is first imported, and the ``celery``
    command imports it early (Flower's plugin does), so the class is re-picked here: metrics
    created afterwards write their samples under ``path``.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


def enable() -> bool:
    """Create the worker metrics (once per process); False when ``prometheus_client`` is missing."""
    global _metrics
    if _metrics is not None:
        return True
    with _lock:
        if _metrics is not None:
            return True
        try:
            from prometheus_client import Counter, Histogram
        except ImportError:  # pragma: no cover - the service extra installs it
            log.warning("prometheus_client is not installed: no metrics")
            return False
        _metrics = {
            "batch_size": Histogram(
                "ocr_recognize_batch_size", "Crops per recognizer call (one flush)", buckets=BATCH_BUCKETS
            ),
            "flushes": Counter(
                "ocr_recognize_batch_flushes", "Recognition flushes by cause (size: cap reached, timeout)", ["cause"]
            ),
            "batch_seconds": Histogram(
                "ocr_recognize_batch_seconds", "Recognizer time per flush", buckets=SECONDS_BUCKETS
            ),
            "crops": Counter("ocr_recognize_crops", "Crops recognised"),
            "stage": Histogram(
                "ocr_stage_seconds", "Seconds per document and stage (the document's timings)", ["stage"],
                buckets=SECONDS_BUCKETS,
            ),
            "documents": Counter("ocr_documents", "Documents finished by outcome", ["outcome"]),
            "boxes": Histogram("ocr_detect_boxes", "Boxes found per page", buckets=BATCH_BUCKETS),
        }
    return True


def enabled() -> bool:
    """Whether :func:`enable` has run in this process."""
    return _metrics is not None


def observe_batch(size: int, cause: str, seconds: float) -> None:
    """One recognizer flush of ``size`` crops, flushed by ``cause``, that took ``seconds``."""
    m = _metrics
    if m is None:
        return
    m["batch_size"].observe(size)
    m["flushes"].labels(cause=cause or "unknown").inc()
    m["batch_seconds"].observe(seconds)
    m["crops"].inc(size)


def observe_detect(boxes: int) -> None:
    """A page's detection found ``boxes`` boxes."""
    if _metrics is not None:
        _metrics["boxes"].observe(boxes)


def observe_document(timings: Mapping[str, Any]) -> None:
    """A finished document: its ``timings`` per stage, and one ``success``."""
    m = _metrics
    if m is None:
        return
    for stage in STAGES:
        value = timings.get(stage)
        if isinstance(value, (int, float)):
            m["stage"].labels(stage=stage).observe(float(value))
    m["documents"].labels(outcome="success").inc()


def count_failure() -> None:
    """A document that failed in a worker."""
    if _metrics is not None:
        _metrics["documents"].labels(outcome="failure").inc()


def registry(
    store_url: str | None = None, broker_url: str | None = None, queues: Iterable[str] = (), page_ttl: int = 3600
) -> Any:
    """A registry for serving: every process's samples (multiprocess mode) or this process's,
    plus the Redis gauges when ``store_url`` (the page store's Redis) is given; queue depths
    need ``broker_url`` (a Redis broker)."""
    from prometheus_client import REGISTRY, CollectorRegistry

    if _multiprocess():
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        reg.register(_Delegate(REGISTRY))  # this process's metrics
    if store_url:
        reg.register(RedisCollector(store_url, broker_url, queues, page_ttl))
    return reg


def serve(port: int, addr: str = "127.0.0.1", **registry_kwargs: Any) -> Any:
    """Start the HTTP metrics endpoint in a daemon thread; returns the server (None if it failed)."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry(**registry_kwargs))
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s", addr, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return server


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of an exited pool process (multiprocess mode)."""
    if not _multiprocess():
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except Exception:  # noqa: BLE001 - never let metrics bookkeeping break a worker
        log.debug("mark_process_dead(%d) failed", pid, exc_info=True)


class _Delegate:
    """Serve another registry's metrics from a new registry (single-process mode)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        yield from self.source.collect()


#: kombu's Redis transport keeps priority levels in sibling lists named ``<queue>\\x06\\x16<n>``.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class RedisCollector:
    """Gauges read from Redis at scrape time: queue depths and unacknowledged messages (when the
    broker is Redis), documents in flight. A Redis that does not answer yields
    ``ocr_redis_up 0`` instead of an error.

    Args:
        store_url: the page store's Redis (``OCR_REDIS_URL``).
        broker_url: the broker, when it is Redis (None: no queue gauges).
        queues: broker queue names.
        page_ttl: ``OCR_PAGE_TTL`` (in-flight marks older than this are dropped).
    """

    def __init__(
        self, store_url: str, broker_url: str | None, queues: Iterable[str], page_ttl: int = 3600
    ) -> None:
        import redis

        self.queues = tuple(dict.fromkeys(q for q in queues if q)) if broker_url else ()
        self.page_ttl = int(page_ttl)
        self.client = redis.Redis.from_url(store_url, socket_connect_timeout=2, socket_timeout=2)
        same = broker_url is None or broker_url == store_url
        self.broker = self.client if same else redis.Redis.from_url(
            broker_url, socket_connect_timeout=2, socket_timeout=2
        )

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from .storage import REDIS_ERRORS, inflight_count

        up = GaugeMetricFamily("ocr_redis_up", "1 when Redis answered the metrics scrape")
        try:
            with self.broker.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    for suffix in _PRIORITY_SUFFIXES:
                        pipe.llen(queue + suffix)
                pipe.hlen("unacked")
                lengths = pipe.execute()
            inflight = inflight_count(self.client, self.page_ttl)
        except REDIS_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if self.queues:
            depth = GaugeMetricFamily("ocr_queue_depth", "Messages waiting in a broker queue", labels=["queue"])
            step = len(_PRIORITY_SUFFIXES)
            for i, queue in enumerate(self.queues):
                depth.add_metric([queue], sum(int(n) for n in lengths[i * step : (i + 1) * step]))
            yield depth
            unacked = GaugeMetricFamily(
                "ocr_queue_unacked", "Messages delivered to workers and not acknowledged yet (all queues)"
            )
            unacked.add_metric([], int(lengths[-1]))
            yield unacked
        docs = GaugeMetricFamily(
            "ocr_documents_in_flight", "Documents uploaded and not assembled yet (page held in Redis)"
        )
        docs.add_metric([], inflight)
        yield docs


def setup_worker(role: str, settings: Any) -> int | None:
    """Metrics for a Celery worker module, called at its import (before the pool forks).

    When a metrics port is configured (:func:`metrics_port`), switch this process tree to
    multiprocess mode, create the metrics, and connect the Celery signals that serve them
    once the worker is ready (on ``OCR_METRICS_ADDR``, default 127.0.0.1) and drop the live
    gauges of exited pool processes. Returns the port, or None (metrics off).
    """
    port = metrics_port(role)
    if port is None:
        return None
    created = not _multiprocess()
    directory = prepare_multiprocess(prefix=f"ocr-metrics-{role}-")
    if not enable():
        return None

    from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

    broker_is_redis = str(settings.broker).startswith(("redis://", "rediss://", "unix://"))

    @worker_ready.connect(weak=False)
    def _serve(sender: Any = None, **kwargs: Any) -> None:
        serve(
            port,
            addr=os.environ.get("OCR_METRICS_ADDR", "127.0.0.1") or "127.0.0.1",
            store_url=settings.redis_url,
            broker_url=settings.broker if broker_is_redis else None,
            queues=(settings.detect_queue, settings.recognize_queue, settings.aggregate_queue),
            page_ttl=settings.page_ttl,
        )

    @worker_process_shutdown.connect(weak=False)
    def _child_exit(pid: int | None = None, **kwargs: Any) -> None:
        mark_process_dead(int(pid or os.getpid()))

    @worker_shutdown.connect(weak=False)
    def _cleanup(sender: Any = None, **kwargs: Any) -> None:
        if created:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)

    return port
