"""Why the detector misses words: merged, split, misaligned or missed, counted on a dataset.

    python benchmarks/detection_errors.py ../shared/eval/funsd_test [--limit N] [--engine ours|tesseract]

Each ground-truth word is classified by :func:`ocr_tasks.evaluation.metrics.detection_errors`
(merged: inside a box that also covers another word; split: cut into several boxes;
misaligned: overlapped but not matched at IoU >= 0.5; missed: nothing there). Measurement only:
never use it to tune on a test set.
"""

from __future__ import annotations

import argparse
import sys

from ocr_tasks.evaluation.dataset import read_dataset
from ocr_tasks.evaluation.engines import make_engine
from ocr_tasks.evaluation.metrics import DETECTION_ERROR_KINDS, detection_errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="folder with words.jsonl (the eval format)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N pages")
    ap.add_argument("--engine", default="ours", choices=("ours", "tesseract"))
    args = ap.parse_args(argv)
    engine = make_engine(args.engine)
    if hasattr(engine, "prepare"):
        engine.prepare("detection")
    totals = dict.fromkeys(DETECTION_ERROR_KINDS, 0)
    for page in read_dataset(args.dataset, args.limit):
        counts = detection_errors(engine.detect(page.load_rgb()), [w.box for w in page.words])
        for kind, n in counts.items():
            totals[kind] += n
    n = max(sum(totals.values()), 1)
    print(f"{'kind':<11} {'words':>6} {'share':>6}")
    for kind, count in totals.items():
        print(f"{kind:<11} {count:>6} {count / n:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
