"""Build architectures from specs and load them with their weights, once per process."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, WeightsNotFound
from ..settings import RUNTIMES, Settings, get_settings
from .precision import (
    KERNEL_CACHE_CAPACITY,
    RECOGNIZER_KERNEL_CACHE_CAPACITY,
    cpu_has_int8_dot,
    limit_kernel_cache,
    precision_name,
    resolve_precision,
)
from .registry import ModelSpec, get_spec
from .weights import load_weights, resolve_weights, sha256_file

__all__ = [
    "build_model",
    "resolve_device",
    "load_model",
    "detection_predictor",
    "recognition_predictor",
    "onnx_runtime_reason",
    "onnx_cache_file",
    "int8_export",
    "clear_cache",
]

log = logging.getLogger(__name__)
_cache: dict[tuple[object, ...], object] = {}
_lock = threading.Lock()


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"OCR_DEVICE={name!r} but CUDA is not available on this machine")
    return device


def build_model(spec: ModelSpec) -> nn.Module:
    """A randomly initialised network of ``spec``'s architecture (no weights loaded)."""
    if spec.arch == "craft":
        from .detection.craft import CRAFT

        return CRAFT()
    if spec.arch == "craft_refiner":
        from .detection.craft import RefineNet

        return RefineNet()
    if spec.arch == "craft_light":
        from .detection.light import LightCRAFT

        return LightCRAFT(**dict(spec.options))
    if spec.arch == "dtrb":
        from .recognition.network import RecognitionModel, RecognizerOptions

        return RecognitionModel(RecognizerOptions.from_mapping(dict(spec.options)))
    raise ValueError(f"model {spec.name!r} has unknown architecture {spec.arch!r}")


def load_model(
    spec: ModelSpec, model_dir: str | Path | None = None, device: torch.device | str = "cpu"
) -> nn.Module:
    """Build ``spec``'s network, load its weights file, move it to ``device``, eval mode."""
    path = resolve_weights(spec, model_dir)
    model = build_model(spec)
    load_weights(model, path, spec)
    log.info("loaded %s %s from %s", spec.task, spec.name, path)
    return model.to(device).eval()


def _settings_key(settings: Settings) -> tuple[object, ...]:
    return (str(settings.model_dir or ""), settings.device, settings.precision, settings.runtime,
            settings.torch_threads, str(settings.cache_path))


def onnx_runtime_reason(
    settings: Settings, device: torch.device, spec: ModelSpec, refiner: bool = False
) -> str | None:
    """Why ``spec`` will not run on ONNX Runtime (None: it will), per ``OCR_RUNTIME``.

    Raises:
        ConfigError: ``OCR_RUNTIME`` is unknown, or it is ``onnx`` and the model cannot run there.
    """
    from .onnx_runtime import onnx_supported, onnxruntime_available

    if settings.runtime not in RUNTIMES:
        raise ConfigError(f"OCR_RUNTIME={settings.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if settings.runtime == "torch":
        return "OCR_RUNTIME=torch"
    problems = []
    if device.type != "cpu":
        problems.append(f"ONNX Runtime is used on CPU only and the device is {device}")
    if settings.precision not in ("auto", "fp32", "int8"):
        problems.append(f"OCR_PRECISION={settings.precision} asks for torch autocast")
    why = onnx_supported(spec.task, dict(spec.options), refiner)
    if why:
        problems.append(why)
    if not onnxruntime_available():
        problems.append("onnxruntime or onnx is not installed")
    if not problems:
        return None
    reason = "; ".join(problems)
    if settings.runtime == "onnx":
        raise ConfigError(f"OCR_RUNTIME=onnx cannot run {spec.task} {spec.name}: {reason}")
    return reason


def onnx_cache_file(settings: Settings, spec: ModelSpec) -> Path:
    """Where the ONNX export of ``spec``'s network (with its current weights file) is cached."""
    from .onnx_runtime import export_key

    weights = resolve_weights(spec, settings.model_dir)
    options = sorted((str(k), str(v)) for k, v in dict(spec.options).items())
    key = export_key(spec.task, spec.name, spec.arch, options, spec.input_size, sha256_file(weights))
    return settings.cache_path / "onnx" / key


def int8_export(settings: Settings, spec: ModelSpec) -> tuple[Path, str] | None:
    """The shipped int8 export to run ``spec`` with on ONNX Runtime, or None (float32).

    ``OCR_PRECISION=auto`` takes it on CPUs with VNNI int8 dot products when the recognizer has
    one made from the very weights file that will be loaded; ``int8`` takes it anywhere and
    fails where there is none. Detectors have none (int8 was not faster for them).

    Raises:
        ConfigError: ``OCR_PRECISION=int8`` and ``spec`` has no usable int8 export.
    """
    if settings.precision not in ("auto", "int8") or spec.task != "recognizer":
        return None
    meta = dict(spec.int8)
    problems: list[str] = []
    path: Path | None = None
    if not meta.get("filename") or not meta.get("sha256"):
        problems.append(f"{spec.name} has no int8 export")
    else:
        weights = resolve_weights(spec, settings.model_dir)
        if sha256_file(weights) != meta.get("weights_sha256"):
            problems.append(f"its int8 export was made from other weights than {weights}")
        else:
            try:
                path = resolve_weights(replace(spec, filename=str(meta["filename"])), settings.model_dir)
            except WeightsNotFound:
                problems.append(f"its int8 export {meta['filename']} is missing")
    if settings.precision == "auto" and not cpu_has_int8_dot():
        problems.append("this CPU has no VNNI int8 dot products")
    if not problems:
        return path, str(meta["sha256"])  # type: ignore[return-value]
    if settings.precision == "int8":
        raise ConfigError(f"OCR_PRECISION=int8 cannot run recognizer {spec.name}: {'; '.join(problems)}")
    log.info("recognizer %s does not run in int8 (%s)", spec.name, "; ".join(problems))
    return None


def _onnx_or_none(settings: Settings, device: torch.device, spec: ModelSpec, make, refiner: bool = False):  # type: ignore[no-untyped-def]
    """``make()`` (an ONNX Runtime wrapper) when ``OCR_RUNTIME`` allows it, else None (torch)."""
    from .onnx_runtime import OnnxExportError

    reason = onnx_runtime_reason(settings, device, spec, refiner)
    if reason is None:
        try:
            wrapper = make()
        except OnnxExportError as exc:
            if settings.runtime == "onnx":
                raise
            reason = str(exc)
        else:
            log.info("%s %s runs on ONNX Runtime in %s on cpu (OCR_RUNTIME=%s, OCR_PRECISION=%s)", spec.task,
                     spec.name, wrapper.precision, settings.runtime, settings.precision)
            return wrapper
    log.info("%s %s stays on torch (%s)", spec.task, spec.name, reason)
    return None


def _cached(key: tuple[object, ...], make):  # type: ignore[no-untyped-def]
    with _lock:
        if key not in _cache:
            _cache[key] = make()
        return _cache[key]


def _configure_torch(settings: Settings, kernel_cache: int = KERNEL_CACHE_CAPACITY) -> None:
    """Process-wide torch set-up before a predictor is built: oneDNN's kernel cache bound, threads."""
    limit_kernel_cache(kernel_cache)
    if settings.torch_threads > 0 and torch.get_num_threads() != settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def detection_predictor(name: str | None = None, refiner: str | None = None, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    """The (cached) :class:`DetectionPredictor` for a registered detector (+ optional refiner)."""
    from .detection.predictor import DetectionPredictor

    settings = settings or get_settings()
    _configure_torch(settings)
    name = name or settings.detector
    refiner = settings.refiner if refiner is None else refiner
    spec = get_spec(name, "detector")
    ref_spec = get_spec(refiner, "refiner") if refiner else None

    def make() -> DetectionPredictor:
        from .onnx_runtime import OnnxDetector

        device = resolve_device(settings.device)
        model = load_model(spec, settings.model_dir, device)
        ref = load_model(ref_spec, settings.model_dir, device) if ref_spec else None
        onnx = _onnx_or_none(
            settings, device, spec,
            lambda: OnnxDetector(model, settings.torch_threads, onnx_cache_file(settings, spec)),
            refiner=ref is not None,
        )
        if onnx is not None:
            return DetectionPredictor(onnx, spec, device=device)
        dtype = resolve_precision(settings.precision, device, task="detector")
        log.info("detector %s runs in %s on %s (OCR_PRECISION=%s)", name, precision_name(dtype), device, settings.precision)
        return DetectionPredictor(model, spec, refiner=ref, device=device, precision=dtype)

    return _cached(("det", name, refiner, *_settings_key(settings)), make)


def recognition_predictor(name: str | None = None, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    """The (cached) :class:`RecognitionPredictor` for a registered recognizer."""
    from .recognition.predictor import RecognitionPredictor

    settings = settings or get_settings()
    _configure_torch(settings, RECOGNIZER_KERNEL_CACHE_CAPACITY)
    name = name or settings.recognizer
    spec = get_spec(name, "recognizer")

    def make() -> RecognitionPredictor:
        from .onnx_runtime import OnnxExportError, OnnxRecognizer

        device = resolve_device(settings.device)
        model = load_model(spec, settings.model_dir, device)

        def make_onnx() -> OnnxRecognizer:
            int8 = int8_export(settings, spec)
            if int8 is not None:
                try:
                    return OnnxRecognizer(model, spec.input_size, settings.torch_threads, int8=int8)
                except OnnxExportError as exc:
                    if settings.precision == "int8":
                        raise ConfigError(f"OCR_PRECISION=int8 cannot run recognizer {name}: {exc}") from exc
                    log.warning("recognizer %s: its int8 export is not used (%s); float32 instead", name, exc)
            return OnnxRecognizer(model, spec.input_size, settings.torch_threads, onnx_cache_file(settings, spec))

        onnx = _onnx_or_none(settings, device, spec, make_onnx)
        if onnx is not None:
            return RecognitionPredictor(onnx, spec, device=device, max_batch=settings.recognizer_batch)
        dtype = resolve_precision(settings.precision, device, task="recognizer")
        log.info("recognizer %s runs in %s on %s (OCR_PRECISION=%s)", name, precision_name(dtype), device, settings.precision)
        return RecognitionPredictor(
            model, spec, device=device, max_batch=settings.recognizer_batch, precision=dtype,
            channels_last=device.type == "cpu",
        )

    return _cached(("rec", name, *_settings_key(settings)), make)


def clear_cache() -> None:
    """Forget loaded predictors (tests, or after replacing weight files)."""
    with _lock:
        _cache.clear()
