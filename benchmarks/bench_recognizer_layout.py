"""Recognizer speed and memory on a dataset's ground-truth crops, default vs channels-last layout.

Not a test: it prints figures. Usage::

    python benchmarks/bench_recognizer_layout.py DATASET_DIR --layout default|channels_last [--threads 2]

Run each layout in its own process (resident memory is per process): the bundled (or
``OCR_MODEL_DIR``) recognizer is loaded once and reads every page's crops with one
``predict`` call per page, as the pipeline does. Prints one JSON line: milliseconds per crop
(model time only, crops cut beforehand), caseless word accuracy, and the process's resident
memory after the first and the last page.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr_tasks.bench.memory import rss_mb  # noqa: E402
from ocr_tasks.evaluation.dataset import read_dataset  # noqa: E402
from ocr_tasks.evaluation.metrics import RecognitionCounts, evaluate_recognition  # noqa: E402
from ocr_tasks.models.factory import load_model  # noqa: E402
from ocr_tasks.models.recognition.predictor import RecognitionPredictor  # noqa: E402
from ocr_tasks.models.registry import get_spec  # noqa: E402
from ocr_tasks.settings import get_settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="folder with words.jsonl and its images")
    parser.add_argument("--layout", choices=("default", "channels_last"), required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    settings = get_settings()
    spec = get_spec(settings.recognizer, "recognizer")
    predictor = RecognitionPredictor(
        load_model(spec, settings.model_dir), spec, max_batch=settings.recognizer_batch,
        channels_last=args.layout == "channels_last",
    )
    seconds, counts, rss = 0.0, RecognitionCounts(), []
    for page in read_dataset(args.dataset):
        page_crops = page.gt_crops()
        start = time.perf_counter()
        readings = predictor.predict(page_crops)
        seconds += time.perf_counter() - start
        counts += evaluate_recognition([text for text, _ in readings], [word.text for word in page.words])
        rss.append(rss_mb(os.getpid()))
    if not counts.n:
        parser.error(f"{args.dataset}: no words")
    print(json.dumps({
        "layout": args.layout, "recognizer": spec.name, "threads": args.threads, "crops": counts.n,
        "ms_per_crop": round(1000 * seconds / counts.n, 3), "word_accuracy_caseless": round(counts.accuracy_caseless, 4),
        "rss_mb_after_first_page": round(rss[0]), "rss_mb_after_last_page": round(rss[-1]),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
