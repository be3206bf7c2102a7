"""int8 calibration methods of the bundled recognizer against its float32 ONNX export.

Not a test: it prints figures. Usage::

    python benchmarks/bench_int8_calibration.py [--weights PTH] [--val-pages 15] [--calib-pages 8]

Validation crops come from synthetic pages of a seed range that training, calibration, tuning
and the held-out set never use (``VAL_SEED + 500,000 + i``), cut with a detector's
misalignment. For each method it prints exact word accuracy, how many words float32 read that
int8 lost and the reverse, and the seconds the quantizer took. Nothing in ``ocr_tasks/weights``
is written (``ocr-pipeline quantize`` does that).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr_tasks.models.factory import build_model  # noqa: E402
from ocr_tasks.models.onnx_runtime import OnnxRecognizer, export_onnx, quantize_int8  # noqa: E402
from ocr_tasks.models.recognition.predictor import RecognitionPredictor  # noqa: E402
from ocr_tasks.models.registry import BUNDLED_DIR, get_spec  # noqa: E402
from ocr_tasks.models.weights import load_weights  # noqa: E402
from ocr_tasks.training.export import calibration_batches  # noqa: E402
from ocr_tasks.training.recognizer import VAL_SEED, _page_crops  # noqa: E402

METHODS = (("minmax", None), ("percentile", 99.999), ("percentile", 99.99), ("entropy", None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=BUNDLED_DIR / "crnn_light.pth")
    ap.add_argument("--val-pages", type=int, default=15)
    ap.add_argument("--calib-pages", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    spec = get_spec("crnn_light", "recognizer")
    model = load_weights(build_model(spec), args.weights, replace(spec, sha256=None)).eval()
    charset = set(spec.character)
    samples = [s for i in range(args.val_pages) for s in _page_crops(VAL_SEED + 500_000 + i, charset)]
    print(f"{args.weights}: {len(samples)} validation crops from {args.val_pages} pages", flush=True)

    def score(module: torch.nn.Module) -> np.ndarray:
        predictor = RecognitionPredictor(module, spec, device=torch.device("cpu"), max_batch=64)
        preds = predictor.predict([c for c, _ in samples])
        return np.array([p == t for (p, _), (_, t) in zip(preds, samples)])

    base = score(OnnxRecognizer(model, spec.input_size, threads=args.threads))
    print(f"{'float32 (ONNX Runtime)':26s} exact {base.mean():.4f}", flush=True)
    fp32 = export_onnx(model, spec.input_size)
    batches, crops = calibration_batches(spec, args.calib_pages)
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        for method, percentile in METHODS:
            start = time.perf_counter()
            data = quantize_int8(fp32, batches, method=method, **({"percentile": percentile} if percentile else {}))
            took = time.perf_counter() - start
            path = Path(tmp) / f"{method}-{percentile}.onnx"
            path.write_bytes(data)
            int8 = OnnxRecognizer(model, spec.input_size, threads=args.threads,
                                  int8=(path, hashlib.sha256(data).hexdigest()))
            ok = score(int8)
            name = f"int8 {method}" + (f" {percentile}" if percentile else "")
            print(f"{name:26s} exact {ok.mean():.4f}  lost {int((base & ~ok).sum()):3d}  "
                  f"gained {int((~base & ok).sum()):3d}  ({crops} calibration crops, {took:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
