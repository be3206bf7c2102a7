"""ONNX Runtime inference on CPU (``OCR_RUNTIME``).

A loaded torch network is exported to ONNX (``torch.onnx.export``, the TorchScript exporter,
with free batch and spatial sizes) and run by ONNX Runtime's CPU execution provider. The export
is kept in ``OCR_CACHE_DIR`` under a key of the weights file's digest, the options and the torch
version, so only a process that meets a new network pays it (a few seconds).
The wrappers are called like the torch networks they replace and return torch tensors, so the
predictors' code paths (pre-processing, thresholds, decoding) stay the same.

Why: ONNX Runtime's float32 CPU kernels run both bundled networks faster than torch, in fp32
and in bf16 autocast, with float32's exact readings. Measured on an idle 2-core Xeon with
AVX-512 bf16 (docs/BENCHMARKS.md, "ONNX Runtime on CPU"): the detector on a 1216 x 1600 canvas
takes 0.21 s on two threads against 0.27 s (torch fp32) and 0.32 s (torch bf16), 0.37 s against
0.51 / 0.52 s on one; the recognizer reads 200 crops in 0.38 s against 0.58 s (torch fp32); a
FUNSD page end to end takes 0.94 s against 1.12 s with torch bf16.

``auto`` (the default) picks ONNX Runtime on CPU for every detector without a link refiner
and every CTC recognizer, when the precision is ``auto`` or ``fp32``; anything else (CUDA, a
refiner, attention decoding, an explicit bf16/fp16 precision) stays on torch. ``onnx`` asks for
it wherever it can run and fails with a message where it cannot; ``torch`` never uses it.

Each fresh export is checked before it is used or cached: the ONNX graph and the torch network
read the same random inputs of two shapes, and outputs that differ beyond float32 rounding raise
:class:`OnnxExportError` (under ``auto`` the factory then keeps torch and logs why). A cached
export is used when its bytes match the digest written next to it.

**int8.** A recognizer may ship a statically quantized export (``ModelSpec.int8``, made by
``ocr-pipeline export recognizer`` / ``ocr-pipeline quantize`` with :func:`quantize_int8`:
QDQ format, int8 per-channel weights and uint8 activations for the convolutions and matrix
products, ranges calibrated on synthetic word crops; the LSTM stays float32). On an idle
2-core Xeon with AVX-512 VNNI it read FUNSD's ground-truth crops at 1.03-1.13 ms each against
1.66-1.71 ms for the float32 export, with the same word accuracy (FUNSD 0.7254 vs 0.7237
caseless, the 19,791 held-out synthetic crops 0.8516 vs 0.8515 exact; docs/BENCHMARKS.md). The same quantization of the
detector was not faster (0.14-0.16 s per 1216 x 1600 canvas either way: its depthwise
convolutions gain nothing and the quantize/dequantize pairs cost), so detectors stay float32.
The quantized file is only used with the weights file it was made from (its sha256 is
recorded); ``auto`` uses it on CPUs with VNNI (:func:`..precision.cpu_has_int8_dot`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import OCRError
from ..settings import INT8_CALIBRATIONS as CALIBRATIONS
from ..settings import INT8_PERCENTILE, RUNTIMES

__all__ = [
    "RUNTIMES",
    "OnnxExportError",
    "export_onnx",
    "quantize_int8",
    "onnxruntime_available",
    "OnnxDetector",
    "OnnxRecognizer",
    "onnx_supported",
]

log = logging.getLogger(__name__)

#: ONNX opset of the exports (GridSample, used by TPS, needs 16).
OPSET = 17
#: Bump when the export code changes what it writes (invalidates cached exports).
EXPORT_VERSION = 1
#: Largest accepted difference between the ONNX and torch outputs, relative to the outputs' scale.
TOLERANCE = 1e-3
#: Whether idle intra-op threads busy-wait for the next run (ONNX Runtime's default). Off: see
#: :func:`_session`. ``benchmarks/bench_pipeline.py --spin`` turns it on to measure the difference.
ALLOW_SPINNING = False


class OnnxExportError(OCRError):
    """A network could not be exported to ONNX, or its export reads differently from torch."""


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` imports and ``onnx`` (which torch's exporter needs) is installed.

    ``onnx`` is only looked up, not imported: importing it costs about a second, and a cached
    export does not need it.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("onnx") is not None


def onnx_supported(task: str, options: dict[str, Any] | None = None, refiner: bool = False) -> str | None:
    """Why a model cannot run on ONNX Runtime under ``auto`` (None when it can).

    Args:
        task: "detector" or "recognizer".
        options: the registry entry's options (a recognizer's ``prediction`` is read).
        refiner: a link refiner is attached to the detector.
    """
    if task == "detector" and refiner:
        return "the link refiner runs on the detector's torch features"
    if task == "recognizer" and str((options or {}).get("prediction", "CTC")) != "CTC":
        return "attention decoding is a loop that the exporter would unroll"
    return None


def export_key(*parts: object) -> str:
    """A cache file name for an export: the sha256 of ``parts`` (weights digest, options, ...)
    together with the torch version and :data:`OPSET`, so that a new exporter exports again."""
    text = "\x1f".join(str(p) for p in (*parts, torch.__version__, OPSET, EXPORT_VERSION))
    return hashlib.sha256(text.encode()).hexdigest()[:32] + ".onnx"


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str],
            dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on traced RNNs and shapes
            torch.onnx.export(
                model, args, buf, input_names=input_names, output_names=output_names,
                dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                training=torch.onnx.TrainingMode.PRESERVE,  # EVAL would restore train() afterwards
            )
    except Exception as exc:  # the exporter raises many types
        raise OnnxExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def _write_cache(path: Path, data: bytes) -> None:
    """Write ``data`` and its sha256 next to it, each atomically (the digest last)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, data), (path.with_name(path.name + ".sha256"),
                                               hashlib.sha256(data).hexdigest().encode())):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)
    except OSError as exc:
        log.info("ONNX export not cached (%s: %s)", path.parent, exc)


def _session(data: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # No busy-waiting between runs: an idle ONNX Runtime worker thread that spins holds a core
    # while the predictors' own torch / OpenCV code (CTC softmax, score-map post-processing) runs
    # between two calls (the CTC softmax took 2.7 ms per batch against 0.07). On a 2-core EPYC,
    # 50 FUNSD pages: recognition 0.311 -> 0.229 s, whole page 0.613 -> 0.501 s per page
    # (``python benchmarks/bench_pipeline.py [--spin]``, docs/BENCHMARKS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ALLOW_SPINNING else "0")
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise OnnxExportError(f"ONNX Runtime cannot load the export: {type(exc).__name__}: {exc}") from exc


def _checked_session(
    model: nn.Module, examples: Sequence[torch.Tensor], input_names: list[str], output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]], threads: int, cache: Path | None, name: str,
) -> Any:
    """An ONNX Runtime session of ``model`` whose outputs match torch's on every example.

    A fresh export is checked against torch, then written to ``cache`` (atomically, with a
    ``.sha256`` file of its bytes; a cache that cannot be written is skipped). A cached export
    whose bytes still match that digest is used without the check: the torch reference runs
    cost seconds (the first LSTM call alone ~0.8 s), and the cache key already covers the
    weights file, the options and the torch version (:func:`export_key`).
    """
    if cache is not None and cache.is_file():
        try:
            data = cache.read_bytes()
            digest = cache.with_name(cache.name + ".sha256").read_text().strip()
            if hashlib.sha256(data).hexdigest() == digest:
                return _session(data, threads)
            log.warning("ignoring the cached ONNX export %s (its bytes do not match their digest)", cache)
        except (OSError, OnnxExportError) as exc:
            log.warning("ignoring the cached ONNX export %s (%s)", cache, exc)
    with torch.no_grad():
        refs = [model(x) for x in examples]
    data = _export(model, (examples[0],), input_names, output_names, dynamic_axes)
    session = _session(data, threads)
    for x, ref in zip(examples, refs):
        _check(name, session.run(None, {input_names[0]: _numpy(x)}), ref if isinstance(ref, (tuple, list)) else (ref,))
    if cache is not None:
        _write_cache(cache, data)
    return session


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def _check(name: str, ours: Sequence[np.ndarray], ref: Sequence[torch.Tensor]) -> None:
    for got, want in zip(ours, ref):
        w = want.detach().float().cpu().numpy()
        if got.shape != w.shape:
            raise OnnxExportError(f"{name}: ONNX output shape {got.shape} differs from torch's {w.shape}")
        diff = float(np.abs(got - w).max()) if w.size else 0.0
        if not np.isfinite(diff) or diff > TOLERANCE * (1.0 + float(np.abs(w).max())):
            raise OnnxExportError(f"{name}: ONNX output differs from torch's by {diff:.3g}")


def _prepared(model: nn.Module) -> nn.Module:
    """``model`` itself, put in eval mode, float32, contiguous weights (the exporter traces what it gets)."""
    return model.eval().float().to(memory_format=torch.contiguous_format)


def _threads(threads: int) -> int:
    return threads if threads > 0 else torch.get_num_threads()


def _examples(shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g).clamp(-2.5, 2.5) for shape in shapes]


class _OnnxModule:
    """Common part: the session and the torch-in, torch-out call."""

    runtime = "onnx"
    #: Arithmetic of the session: "fp32", or "int8" for a quantized export.
    precision = "fp32"
    training = False
    session: Any

    def _run(self, x: torch.Tensor) -> list[np.ndarray]:
        return self.session.run(None, {"image": _numpy(x)})

    def eval(self) -> _OnnxModule:
        """No-op (the wrapper has no training mode), so callers may treat it as a network."""
        return self


class OnnxDetector(_OnnxModule):
    """A CRAFT-style detector on ONNX Runtime: ``model(x) -> (y, feature)`` as torch's.

    Args:
        model: the torch detector (CRAFT or LightCRAFT); put in eval mode, float32.
        threads: ONNX Runtime intra-op threads (0: torch's thread count).
        cache: file to read the export from, or to write it to (None: no cache).
    """

    def __init__(self, model: nn.Module, threads: int = 0, cache: Path | None = None) -> None:
        # two canvases (multiples of 32, as the predictor pads) check that both sides are free
        self.session = _checked_session(
            _prepared(model), _examples([(1, 3, 160, 160), (1, 3, 96, 224)]), ["image"], ["y", "feature"],
            {"image": {2: "height", 3: "width"}, "y": {1: "h", 2: "w"}, "feature": {2: "fh", 3: "fw"}},
            _threads(threads), cache, "detector",
        )

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, feature = self._run(x)
        return torch.from_numpy(y), torch.from_numpy(feature)


class _CTCForward(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, None, False)


def _recognizer_export(
    model: nn.Module, input_size: tuple[int, int]
) -> tuple[nn.Module, list[torch.Tensor], dict[str, dict[int, str]]]:
    """What a recognizer is exported as: the logits-only module, example inputs (two batch
    sizes, two widths where the width is free: all but TPS) and the dynamic axes."""
    options = getattr(model, "options", None)
    in_ch = int(getattr(options, "input_channel", 1))
    tps = getattr(options, "transformation", "None") == "TPS"
    height, width = input_size
    shapes = [(3, in_ch, height, width), (2, in_ch, height, width)] if tps else \
        [(3, in_ch, height, 120), (2, in_ch, height, 72)]
    axes = {"image": {0: "batch"} if tps else {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "steps"}}
    return _CTCForward(_prepared(model)).eval(), _examples(shapes), axes


def export_onnx(model: nn.Module, input_size: tuple[int, int]) -> bytes:
    """The float32 ONNX export of a CTC recognizer, as :class:`OnnxRecognizer` makes it
    (unchecked: :func:`quantize_int8` starts from it)."""
    module, examples, axes = _recognizer_export(model, input_size)
    return _export(module, (examples[0],), ["image"], ["logits"], axes)


def quantize_int8(
    fp32: bytes, calibration: Sequence[np.ndarray], method: str = CALIBRATIONS[0],
    percentile: float = INT8_PERCENTILE,
) -> bytes:
    """Static int8 quantization of a recognizer export (ONNX Runtime's ``quantize_static``).

    QDQ format; convolutions and matrix products get int8 per-channel weights and uint8
    activations whose ranges come from ``calibration`` (float32 input batches, as the predictor
    builds them); everything else (the LSTM, pooling) stays float32.

    ``method``: ``"minmax"`` takes the extremes seen; ``"percentile"`` clips each activation's
    histogram at ``percentile``; ``"entropy"`` picks the range that keeps the quantized histogram
    closest (KL divergence) to the float one. Batches are fed to the calibrator one at a time,
    so the histogram methods work with batches of different widths (ONNX Runtime stacks the
    outputs of one ``collect_data`` call, which fails for ragged shapes).

    Raises:
        OnnxExportError: the quantizer failed, there is no calibration data, or an unknown method.
    """
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise OnnxExportError("int8 quantization needs calibration batches")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise OnnxExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATIONS)}")

    class _Reader(CalibrationDataReader):
        """All batches, served one ``collect_data`` call at a time (``set_range``)."""

        def __init__(self) -> None:
            self._it = iter(calibration)

        def __len__(self) -> int:
            return len(calibration)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(calibration[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {"image": np.ascontiguousarray(batch, dtype=np.float32)}

    extra = {"CalibStridedMinMax": 1}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    with tempfile.TemporaryDirectory(prefix="ocr-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(fp32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
                quantize_static(
                    str(pre), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=methods[method], op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                    extra_options=extra,
                )
        except Exception as exc:  # the quantizer raises many types
            raise OnnxExportError(f"int8 quantization failed: {type(exc).__name__}: {exc}") from exc
        return out.read_bytes()


def _quantized_session(path: Path, sha256: str, threads: int, example: torch.Tensor, num_class: int) -> Any:
    """A session of a shipped int8 export, after checking its digest and one output's shape."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OnnxExportError(f"cannot read the int8 export {path}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise OnnxExportError(f"{path}: sha256 {actual} differs from the registered {sha256}")
    session = _session(data, threads)
    (logits,) = session.run(None, {"image": _numpy(example)})
    if logits.ndim != 3 or logits.shape[0] != example.shape[0] or logits.shape[2] != num_class \
            or not np.isfinite(logits).all():
        raise OnnxExportError(f"{path}: the int8 export answers logits of shape {logits.shape}")
    return session


class OnnxRecognizer(_OnnxModule):
    """A CTC recognizer on ONNX Runtime: ``model(image, text, is_train) -> logits`` as torch's.

    Args:
        model: the torch RecognitionModel (CTC prediction); put in eval mode, float32.
        input_size: its ``(height, width)``; TPS models are exported at exactly that width.
        threads: ONNX Runtime intra-op threads (0: torch's thread count).
        cache: file to read the export from, or to write it to (None: no cache).
        int8: ``(path, sha256)`` of a shipped int8 export of this model's weights, run instead
            of a float32 export (its digest and output shape are checked; it reads close to,
            not exactly as, torch, so it is not compared with it).
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, int], threads: int = 0,
                 cache: Path | None = None, int8: tuple[Path, str] | None = None) -> None:
        module, examples, axes = _recognizer_export(model, input_size)
        if int8 is not None:
            num_class = int(model.options.num_class)
            self.session = _quantized_session(int8[0], int8[1], _threads(threads), examples[0], num_class)
            self.precision = "int8"
            return
        self.session = _checked_session(
            module, examples, ["image"], ["logits"], axes, _threads(threads), cache, "recognizer",
        )

    def __call__(self, image: torch.Tensor, text: Any = None, is_train: bool = False) -> torch.Tensor:
        return torch.from_numpy(self._run(image)[0])
