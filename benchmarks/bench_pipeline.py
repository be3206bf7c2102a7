"""Per-stage seconds of the sequential pipeline on real pages, and memory over many page sizes.

Not a test: it prints figures. Usage::

    python benchmarks/bench_pipeline.py [PAGES_DIR] [--precision auto|fp32|bf16] [--threads 2]
        [--spin] [--varied N] [--varied-crops N]

Reads every image in PAGES_DIR (default: the FUNSD test pages in ../shared/eval/funsd_test/images)
with the bundled models (one warm-up page first) and prints the pipeline's own timings per page
(detect, crop, recognize, total). ``--spin`` lets ONNX Runtime's idle threads busy-wait between
runs, as it does by default and as this project did until session 17, to measure what turning
it off gained. ``--varied N`` then runs the detector on N blank pages of
random sizes (500-2600 px per side, seed 0) and prints the process's resident memory every 10
pages: each new input shape may compile and cache new oneDNN kernels. ``--varied-crops N`` does
the same for the recognizer: N pages of 40-260 word crops of random height (8-60 px) and width,
printing resident memory and milliseconds per crop every 25 pages.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr_tasks.bench.memory import rss_mb  # noqa: E402
from ocr_tasks.bench.pages import load_pages  # noqa: E402
from ocr_tasks.imaging import decode_image  # noqa: E402
from ocr_tasks.models import onnx_runtime  # noqa: E402
from ocr_tasks.models.precision import precision_name  # noqa: E402
from ocr_tasks.pipeline import OCRPipeline  # noqa: E402
from ocr_tasks.settings import Settings  # noqa: E402


def arithmetic(predictor) -> str:  # type: ignore[no-untyped-def]
    """What a predictor's network computes in and on what: an ONNX Runtime wrapper says its own
    precision (int8 or fp32); a torch network runs in the predictor's autocast dtype."""
    net = predictor.model
    runtime = getattr(net, "runtime", "torch")
    return f"{getattr(net, 'precision', None) or precision_name(predictor.precision)} on {runtime}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="?", default=str(ROOT.parent / "shared/eval/funsd_test/images"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spin", action="store_true",
                        help="ONNX Runtime's idle threads busy-wait between runs (its default; ours is off)")
    parser.add_argument("--varied", type=int, default=0, metavar="N")
    parser.add_argument("--varied-crops", type=int, default=0, metavar="N",
                        help="then recognize N pages of random word crops (random count, height and width)")
    args = parser.parse_args(argv)

    try:
        pages = load_pages(args.pages)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    onnx_runtime.ALLOW_SPINNING = args.spin
    settings = replace(Settings.from_env(), precision=args.precision, torch_threads=args.threads)
    pipe = OCRPipeline.from_names(settings=settings)
    print(f"detector {arithmetic(pipe.detector)}, recognizer {arithmetic(pipe.recognizer)}, {args.threads} threads, "
          f"ONNX Runtime threads {'spin' if args.spin else 'sleep'} between runs")
    images = [decode_image(data) for _, data in pages]
    pipe.ocr_image(images[0])  # warm-up
    totals = dict.fromkeys(("detect", "crop", "recognize", "total"), 0.0)
    words = 0
    for image in images:
        doc = pipe.ocr_image(image)
        words += len(doc.words)
        for key in totals:
            totals[key] += doc.timings[key]
    n = len(images)
    print(f"{n} pages, {words / n:.0f} words per page; seconds per page: "
          + ", ".join(f"{k} {v / n:.3f}" for k, v in totals.items()))
    print(f"resident memory after the pages: {rss_mb(os.getpid()):.0f} MiB")
    rng = np.random.default_rng(0)
    for i in range(args.varied):
        h, w = int(rng.integers(500, 2600)), int(rng.integers(500, 2600))
        page = np.full((h, w, 3), 255, np.uint8)
        cv2.putText(page, "Sample text 123", (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
        pipe.detector.detect(page)
        if (i + 1) % 10 == 0:
            print(f"after {i + 1} page sizes: {rss_mb(os.getpid()):.0f} MiB", flush=True)
    seconds, crops_done = 0.0, 0
    for i in range(args.varied_crops):
        crops = []
        for _ in range(int(rng.integers(40, 260))):
            h = int(rng.integers(8, 60))
            w = int(rng.integers(h // 2 + 1, h * 14))
            crop = np.full((h, w, 3), 235, np.uint8)
            cv2.putText(crop, "Word", (1, h - 2), cv2.FONT_HERSHEY_SIMPLEX, h / 40, (20, 20, 20), 1)
            crops.append(crop)
        t0 = time.perf_counter()
        pipe.recognizer.predict(crops)
        seconds += time.perf_counter() - t0
        crops_done += len(crops)
        if (i + 1) % 25 == 0:
            print(f"after {i + 1} crop pages ({crops_done} crops, {1000 * seconds / crops_done:.2f} ms/crop): "
                  f"{rss_mb(os.getpid()):.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
