"""``ocr-pipeline eval``: score engines on a words.jsonl folder (e.g. the FUNSD dev set).

Usage::

    ocr-pipeline eval DATASET_DIR [--engine ours|tesseract|ours,tesseract]
                      [--task recognition|detection|e2e] [--json OUT] [--limit N]
                      [--detector NAME] [--recognizer NAME]

Several engines (comma list) run on the same pages in one pass and are printed side by side.
Only the engine calls are timed (model loading, image decoding and scoring are not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ENGINE_NAMES, TASKS

if TYPE_CHECKING:  # numpy/PIL are imported only when a command runs, so --help stays instant
    from .engines import Engine
    from .metrics import DetectionCounts, EndToEndCounts, RecognitionCounts

__all__ = ["COMMANDS", "add_eval", "cmd_eval", "EngineRun", "run_evaluation", "format_table"]


@dataclass
class EngineRun:
    """Accumulated counts and timings of one engine on one task.

    Attributes:
        engine: Engine name.
        task: ``recognition``, ``detection`` or ``e2e``.
        pages: Pages processed.
        seconds: Time spent inside the engine calls.
        detection: Detection counts (detection and e2e tasks).
        e2e: End-to-end counts (e2e task).
        recognition: Word accuracy counts (recognition task).
        info: Engine settings for the report.
    """

    engine: str
    task: str
    pages: int = 0
    seconds: float = 0.0
    detection: DetectionCounts | None = None
    e2e: EndToEndCounts | None = None
    recognition: RecognitionCounts | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def units(self) -> int:
        """What the time is divided by: crops for recognition, pages otherwise."""
        if self.task == "recognition":
            return self.recognition.n if self.recognition else 0
        return self.pages

    @property
    def seconds_per_unit(self) -> float:
        """Seconds per crop (recognition) or per page (detection, e2e)."""
        return self.seconds / self.units if self.units else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        out: dict[str, Any] = {"engine": self.engine, "task": self.task, "pages": self.pages}
        if self.detection is not None:
            out["detection"] = self.detection.to_dict()
        if self.e2e is not None:
            out["e2e"] = self.e2e.to_dict()
        if self.recognition is not None:
            out["recognition"] = self.recognition.to_dict()
        out["seconds"] = round(self.seconds, 4)
        unit = "crop" if self.task == "recognition" else "page"
        out[f"seconds_per_{unit}"] = round(self.seconds_per_unit, 6)
        out["engine_info"] = self.info
        return out


def _score_page(run: EngineRun, engine: Engine, page: Any, rgb: Any, crops: Any) -> None:
    from .metrics import (
        DetectionCounts,
        EndToEndCounts,
        RecognitionCounts,
        evaluate_detection,
        evaluate_end_to_end,
        evaluate_recognition,
    )

    t0 = time.perf_counter()
    if run.task == "recognition":
        predicted = engine.recognize(crops)
        run.seconds += time.perf_counter() - t0
        counts = evaluate_recognition([t for t, _ in predicted], [w.text for w in page.words])
        run.recognition = (run.recognition or RecognitionCounts()) + counts
    elif run.task == "detection":
        quads = engine.detect(rgb)
        run.seconds += time.perf_counter() - t0
        det = evaluate_detection(quads, [w.box for w in page.words])
        run.detection = (run.detection or DetectionCounts()) + det
    else:
        words = engine.ocr(rgb)
        run.seconds += time.perf_counter() - t0
        e2e = evaluate_end_to_end(words, [(w.box, w.text) for w in page.words])
        run.e2e = (run.e2e or EndToEndCounts()) + e2e
        run.detection = (run.detection or DetectionCounts()) + e2e.detection
    run.pages += 1


def run_evaluation(
    engines: Sequence[Engine],
    pages: Any,
    task: str = "e2e",
    progress: Callable[[Any], Any] | None = None,
) -> list[EngineRun]:
    """Score every engine on the same pages.

    Args:
        engines: Engines to run; each page is decoded once and given to all of them.
        pages: Iterable of :class:`ocr_tasks.evaluation.dataset.Page`.
        task: ``recognition`` (ground-truth crops), ``detection`` or ``e2e``.
        progress: Optional wrapper of the page iterable (e.g. ``tqdm``).

    Returns:
        One :class:`EngineRun` per engine, counts summed over pages.
    """
    from .dataset import to_gray

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    runs = [EngineRun(engine=e.name, task=task) for e in engines]
    for engine in engines:
        prepare = getattr(engine, "prepare", None)
        if callable(prepare):
            prepare(task)
    for run, engine in zip(runs, engines):
        describe = getattr(engine, "describe", None)
        run.info = describe() if callable(describe) else {}
    iterable = progress(pages) if progress else pages
    for page in iterable:
        rgb = page.load_rgb()
        crops = page.gt_crops(to_gray(rgb)) if task == "recognition" else None
        for run, engine in zip(runs, engines):
            _score_page(run, engine, page, rgb, crops)
    return runs


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _rows(run: EngineRun) -> list[tuple[str, str]]:
    rows = [("engine", run.engine), ("task", run.task), ("pages", str(run.pages))]
    if run.recognition is not None:
        r = run.recognition
        rows += [
            ("crops (GT words)", str(r.n)),
            ("correct exact", str(r.correct)),
            ("correct caseless", str(r.correct_caseless)),
            ("word accuracy exact", _pct(r.accuracy)),
            ("word accuracy caseless", _pct(r.accuracy_caseless)),
        ]
    if run.detection is not None:
        d = run.detection
        rows += [
            ("GT words", str(d.n_gt)),
            ("predicted words", str(d.n_pred)),
            ("det TP (IoU>=0.5)", str(d.tp)),
            ("det precision", _pct(d.precision)),
            ("det recall", _pct(d.recall)),
            ("det H-mean", _pct(d.hmean)),
        ]
    if run.e2e is not None:
        e = run.e2e
        rows += [
            ("e2e TP exact", str(e.tp)),
            ("e2e precision exact", _pct(e.precision)),
            ("e2e recall exact", _pct(e.recall)),
            ("e2e F1 exact", _pct(e.f1)),
            ("e2e TP caseless", str(e.tp_caseless)),
            ("e2e F1 caseless", _pct(e.f1_caseless)),
        ]
    unit = "crop" if run.task == "recognition" else "page"
    rows.append((f"seconds per {unit}", f"{run.seconds_per_unit:.4f}"))
    return rows


def format_table(runs: Sequence[EngineRun]) -> str:
    """A plain-text table: one row per measure, one column per engine."""
    if not runs:
        return ""
    columns = [_rows(r) for r in runs]
    labels = [label for label, _ in columns[0]]
    width0 = max(len(s) for s in labels)
    widths = [max(len(v) for _, v in col) for col in columns]
    lines = []
    for i, label in enumerate(labels):
        cells = [col[i][1].rjust(w) for col, w in zip(columns, widths)]
        lines.append(f"{label:<{width0}}  " + "  ".join(cells))
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def _parse_engines(value: str) -> list[str]:
    from ..cli import CLIError

    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in ENGINE_NAMES]
    if not names or bad:
        raise CLIError(f"--engine {value!r}: choose one or more of {', '.join(ENGINE_NAMES)} (comma-separated)")
    if len(set(names)) != len(names):
        raise CLIError(f"--engine {value!r} names an engine twice")
    return names


def _build_engines(names: Sequence[str], args: argparse.Namespace) -> list[Engine]:
    from ..cli import _settings, _threshold_overrides
    from .engines import OursEngine, TesseractEngine

    engines: list[Engine] = []
    for name in names:
        if name == "ours":
            engines.append(
                OursEngine(
                    detector=args.detector,
                    recognizer=args.recognizer,
                    refiner=args.refiner,
                    settings=_settings(args),
                    thresholds=_threshold_overrides(args) or None,
                )
            )
        else:
            engines.append(TesseractEngine(psm=args.tesseract_psm, lang=args.tesseract_lang))
    return engines


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``ocr-pipeline eval``: print the table, write JSON if asked."""
    from ..cli import CLIError
    from .dataset import count_pages, read_dataset

    if args.limit is not None and args.limit < 1:
        raise CLIError("--limit must be at least 1")
    names = _parse_engines(args.engine)
    n_pages = count_pages(args.dataset, args.limit)
    engines = _build_engines(names, args)

    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        def progress(it: Any) -> Any:
            return tqdm(it, total=n_pages, desc=f"eval {args.task}", unit="page", file=sys.stderr)

    runs = run_evaluation(engines, read_dataset(args.dataset, args.limit), args.task, progress)
    payload = {
        "dataset": str(Path(args.dataset).resolve()),
        "task": args.task,
        "limit": args.limit,
        "pages": n_pages,
        "iou_threshold": 0.5,
        "matching": "one-to-one greedy on highest IoU; predicted quads reduced to their axis-aligned box",
        "results": [r.to_dict() for r in runs],
    }
    table = format_table(runs)
    if args.json == "-":
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        print(table, file=sys.stderr)
    else:
        print(table)
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


def add_eval(sub: Any) -> None:
    """Register ``ocr-pipeline eval`` on the main CLI's subparsers."""
    from ..cli import _add_model_args

    p = sub.add_parser(
        "eval",
        help="score OCR engines on a words.jsonl folder (detection, end-to-end, recognition)",
        description=(
            "Score engines on DATASET_DIR/words.jsonl: IoU>=0.5 one-to-one greedy matching, counts "
            "summed over pages. e2e also reports detection; recognition reads the ground-truth crops."
        ),
    )
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder with words.jsonl and the images it names")
    p.add_argument(
        "--engine",
        default="ours",
        help=f"engine or comma list of engines, side by side ({', '.join(ENGINE_NAMES)}; default: ours)",
    )
    p.add_argument("--task", choices=TASKS, default="e2e", help="default: e2e (reports detection too)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT ('-': stdout)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N pages")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--tesseract-psm", type=int, choices=(3, 11), default=11, help="page segmentation for pages (default 11)"
    )
    p.add_argument("--tesseract-lang", default="eng", help="Tesseract language (default eng)")
    _add_model_args(p, detector=True, recognizer=True)
    p.set_defaults(func=cmd_eval)


#: Registrars picked up by ``ocr_tasks.cli``.
COMMANDS: list[Callable[[Any], None]] = [add_eval]
