"""One settings object, built from ``OCR_*`` environment variables.

Every field documents its variable. Nothing here reads the environment at import time:
call :func:`get_settings` (cached) or :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

__all__ = ["Settings", "get_settings"]


def _env_path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


#: Values of ``OCR_PRECISION`` (see :mod:`ocr_tasks.models.precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Values of ``OCR_RUNTIME`` (see :mod:`ocr_tasks.models.onnx_runtime`).
RUNTIMES = ("auto", "torch", "onnx")
#: Activation-range calibrations of the int8 recognizer export (``ocr-pipeline quantize
#: --calibration``, :func:`ocr_tasks.models.onnx_runtime.quantize_int8`), the default first.
INT8_CALIBRATIONS = ("minmax", "percentile", "entropy")
#: Default clipping percentile of the ``percentile`` calibration.
INT8_PERCENTILE = 99.999


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of the OCR library (and later the service)."""

    #: ``OCR_MODEL_DIR``: directory searched first for weight files (``<name>.pth``); then the
    #: package's bundled ``ocr_tasks/weights``.
    model_dir: Path | None = None
    #: ``OCR_DETECTOR``: registry name of the default detector.
    detector: str = "craft_light"
    #: ``OCR_RECOGNIZER``: registry name of the default recognizer.
    recognizer: str = "crnn_light"
    #: ``OCR_REFINER``: registry name of a link refiner to use with the detector ("" = none).
    refiner: str = ""
    #: ``OCR_DEVICE``: torch device for inference ("cpu", "cuda", "cuda:1"; "auto" picks CUDA if present).
    device: str = "auto"
    #: ``OCR_TORCH_THREADS``: intra-op threads for CPU inference (0 = torch's default).
    torch_threads: int = 0
    #: ``OCR_PRECISION``: inference arithmetic, ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` | ``int8``
    #: (:mod:`ocr_tasks.models.precision`; auto: bf16/fp16 on GPUs; on CPUs bf16 for both
    #: models where the CPU has native bf16, else fp32; on ONNX Runtime the recognizer's shipped
    #: int8 export where the CPU has int8 dot products (VNNI), else fp32; ``int8`` asks for that
    #: export and fails where it cannot run).
    precision: str = "auto"
    #: ``OCR_RUNTIME``: what runs the networks, ``auto`` | ``torch`` | ``onnx``
    #: (:mod:`ocr_tasks.models.onnx_runtime`; auto: ONNX Runtime on CPU for detectors without a
    #: refiner and CTC recognizers at fp32/auto precision, torch everywhere else).
    runtime: str = "auto"
    #: ``OCR_CACHE_DIR``: where derived files are kept between runs (ONNX exports of the loaded
    #: networks); default ``$XDG_CACHE_HOME/ocr-pipeline`` or ``~/.cache/ocr-pipeline``. An
    #: unwritable directory only costs the export at every start.
    cache_dir: Path | None = None
    #: ``OCR_MAX_PIXELS``: largest accepted image (width x height); bigger images are refused.
    max_pixels: int = 40_000_000
    #: ``OCR_MAX_SIDE``: largest accepted side in pixels.
    max_side: int = 20_000
    #: ``OCR_MAX_IMAGE_BYTES``: largest accepted encoded image in bytes.
    max_image_bytes: int = 50 * 1024 * 1024
    #: ``OCR_RECOGNIZER_BATCH``: most crops in one recognizer forward pass.
    recognizer_batch: int = 256

    # --- service (Celery / Redis / web) -------------------------------------------------
    #: ``OCR_REDIS_URL``: Redis used for the result backend, page blobs and (by default) the broker.
    redis_url: str = "redis://localhost:6379/0"
    #: ``OCR_BROKER_URL``: Celery broker ("" = ``redis_url``); ``amqp://`` for RabbitMQ works too.
    broker_url: str = ""
    #: ``OCR_RESULT_BACKEND``: Celery result backend ("" = ``redis_url``). Must be Redis (chords).
    result_backend: str = ""
    #: ``OCR_DETECT_QUEUE``: queue of the per-document detect tasks.
    detect_queue: str = "detect"
    #: ``OCR_RECOGNIZE_QUEUE``: queue of the per-crop recognition tasks (the GPU worker's queue).
    recognize_queue: str = "recognize"
    #: ``OCR_AGGREGATE_QUEUE``: queue of the per-document chord bodies (light CPU work; the detect
    #: worker consumes it next to the detect queue, so a finished document never waits behind
    #: the detect backlog).
    aggregate_queue: str = "aggregate"
    #: ``OCR_BATCH_SIZE``: flush a recognition batch when this many crops wait ("auto" allowed later).
    batch_size: str = "350"
    #: ``OCR_BATCH_TIMEOUT``: seconds after which a partial recognition batch is flushed.
    batch_timeout: float = 0.25
    #: ``OCR_RESULT_TTL``: seconds document results are kept in the result backend.
    result_ttl: int = 86_400
    #: ``OCR_PAGE_TTL``: seconds an uploaded page blob lives in Redis waiting for its worker.
    page_ttl: int = 3_600
    #: ``OCR_MODELS``: "real" (load the configured models) or "noop" (orchestration-only stand-ins).
    models: str = "real"
    #: ``OCR_VISIBILITY_TIMEOUT``: seconds a task delivered from the Redis broker may stay
    #: unacknowledged before it is delivered again (a worker that died holding it). Must exceed
    #: the longest time a message is held: a detect task, or two recognition batches.
    visibility_timeout: int = 600
    #: ``OCR_MAX_BACKLOG``: most documents waiting in the detect queue; ``/batch_ocr`` answers
    #: 503 with ``Retry-After`` beyond it (0 = no limit).
    max_backlog: int = 1_000
    #: ``OCR_CROP_RESULT_TTL``: seconds a per-crop result is kept (deleted anyway once its
    #: document is assembled). It also bounds the window in which a redelivered crop is
    #: recognised as a duplicate, so keep it above ``OCR_VISIBILITY_TIMEOUT``.
    crop_result_ttl: int = 7_200
    #: ``OCR_STALL_TIMEOUT``: a document in flight without any progress for this many seconds
    #: is sent to detection again (twice at most), then failed (:mod:`ocr_tasks.recovery`;
    #: 0 = no watchdog). Keep it well above ``OCR_VISIBILITY_TIMEOUT`` and the detect queue wait.
    stall_timeout: int = 1_800
    #: ``OCR_WORKER_MAX_MEMORY_KB``: a prefork (detect) worker process is replaced after a task
    #: that leaves it above this resident memory, in KiB (0 = no limit).
    worker_max_memory_kb: int = 4_000_000

    _ENV = {
        "model_dir": "OCR_MODEL_DIR",
        "detector": "OCR_DETECTOR",
        "recognizer": "OCR_RECOGNIZER",
        "refiner": "OCR_REFINER",
        "device": "OCR_DEVICE",
        "torch_threads": "OCR_TORCH_THREADS",
        "precision": "OCR_PRECISION",
        "runtime": "OCR_RUNTIME",
        "cache_dir": "OCR_CACHE_DIR",
        "max_pixels": "OCR_MAX_PIXELS",
        "max_side": "OCR_MAX_SIDE",
        "max_image_bytes": "OCR_MAX_IMAGE_BYTES",
        "recognizer_batch": "OCR_RECOGNIZER_BATCH",
        "redis_url": "OCR_REDIS_URL",
        "broker_url": "OCR_BROKER_URL",
        "result_backend": "OCR_RESULT_BACKEND",
        "detect_queue": "OCR_DETECT_QUEUE",
        "recognize_queue": "OCR_RECOGNIZE_QUEUE",
        "aggregate_queue": "OCR_AGGREGATE_QUEUE",
        "batch_size": "OCR_BATCH_SIZE",
        "batch_timeout": "OCR_BATCH_TIMEOUT",
        "result_ttl": "OCR_RESULT_TTL",
        "page_ttl": "OCR_PAGE_TTL",
        "models": "OCR_MODELS",
        "visibility_timeout": "OCR_VISIBILITY_TIMEOUT",
        "max_backlog": "OCR_MAX_BACKLOG",
        "crop_result_ttl": "OCR_CROP_RESULT_TTL",
        "worker_max_memory_kb": "OCR_WORKER_MAX_MEMORY_KB",
        "stall_timeout": "OCR_STALL_TIMEOUT",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); bad values raise
        :class:`~ocr_tasks.errors.ConfigError` (a ValueError) naming the variable."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls._ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            kind = types[name]
            if name in ("model_dir", "cache_dir"):
                kwargs[name] = _env_path(raw)
            elif kind in ("int", int):
                try:
                    kwargs[name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{var}={raw!r} is not an integer") from exc
            elif kind in ("float", float):
                try:
                    kwargs[name] = float(raw)
                except ValueError as exc:
                    raise ConfigError(f"{var}={raw!r} is not a number") from exc
            else:
                kwargs[name] = raw.strip()
        for name, choices in (("precision", PRECISIONS), ("runtime", RUNTIMES)):
            value = str(kwargs.get(name, "auto")).lower()
            if value not in choices:
                raise ConfigError(f"{cls._ENV[name]}={value!r} is not one of {', '.join(choices)}")
            kwargs[name] = value
        return cls(**kwargs)  # type: ignore[arg-type]

    @property
    def cache_path(self) -> Path:
        """The effective cache directory (``cache_dir`` or the XDG default)."""
        if self.cache_dir is not None:
            return self.cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base).expanduser() / "ocr-pipeline"

    @property
    def broker(self) -> str:
        """The effective broker URL."""
        return self.broker_url or self.redis_url

    @property
    def backend(self) -> str:
        """The effective result backend URL."""
        return self.result_backend or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()
