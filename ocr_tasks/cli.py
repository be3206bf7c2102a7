"""``ocr-pipeline`` command line.

Subcommands are registered by small ``add_*`` functions; heavy imports (torch) happen only
inside the command that needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import OCRError

__all__ = ["main", "build_parser"]

log = logging.getLogger("ocr_pipeline")


class CLIError(Exception):
    """A problem with the command line itself (exit code 2)."""


def _settings(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from .settings import Settings

    settings = Settings.from_env()
    overrides: dict[str, Any] = {}
    if getattr(args, "model_dir", None):
        overrides["model_dir"] = Path(args.model_dir)
    if getattr(args, "device", None):
        overrides["device"] = args.device
    return replace(settings, **overrides) if overrides else settings


def _threshold_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("text_threshold", "link_threshold", "low_text", "canvas_size", "mag_ratio", "split_link")
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if getattr(args, "poly", False):
        out["poly"] = True
    if getattr(args, "align_short_words", None) is not None:
        out["align_short_words"] = args.align_short_words
    if out:
        from .models.detection.postprocess import CraftThresholds

        for key, value in out.items():  # one at a time, so the error names the flag the user typed
            try:
                CraftThresholds.from_mapping({key: value})
            except ValueError as exc:
                raise CLIError(f"--{key.replace('_', '-')}: {exc}") from None
    return out


def _add_model_args(p: argparse.ArgumentParser, detector: bool, recognizer: bool) -> None:
    p.add_argument("--model-dir", help="directory with weight files (default: $OCR_MODEL_DIR, then bundled)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: $OCR_DEVICE or auto)")
    if detector:
        p.add_argument("--detector", help="registered detector name (default: $OCR_DETECTOR or craft_light)")
        p.add_argument("--refiner", help="registered link refiner, e.g. craft_refiner_CTW1500")
        g = p.add_argument_group("detection post-processing (override the model's tuned defaults)")
        g.add_argument("--text-threshold", type=float)
        g.add_argument("--link-threshold", type=float)
        g.add_argument("--low-text", type=float)
        g.add_argument("--canvas-size", type=int)
        g.add_argument("--mag-ratio", type=float)
        g.add_argument(
            "--split-link",
            type=float,
            help="cut words at text-free gaps whose link scores stay below this (0: off; bundled detector: tuned)",
        )
        g.add_argument("--poly", action="store_true", help="fit polygons (reported boxes stay quads)")
        g.add_argument(
            "--align-short-words",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="fit short words' boxes at their page's text angle (bundled detector: on)",
        )
    if recognizer:
        p.add_argument("--recognizer", help="registered recognizer name (default: $OCR_RECOGNIZER or crnn_light)")


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _each_image(paths: Sequence[str], settings: Any) -> Any:
    from .imaging import load_image

    for path in paths:
        try:
            image = load_image(
                path,
                max_pixels=settings.max_pixels,
                max_side=settings.max_side,
                max_bytes=settings.max_image_bytes,
            )
        except OCRError as exc:
            yield path, None, str(exc)
            continue
        yield path, image, None


def cmd_ocr(args: argparse.Namespace) -> int:
    from .pipeline import OCRPipeline

    settings = _settings(args)
    pipeline = OCRPipeline.from_names(args.detector, args.recognizer, args.refiner, settings=settings)
    thresholds = _threshold_overrides(args)
    docs: list[dict[str, Any]] = []
    failed = 0
    for path, image, error in _each_image(args.pages, settings):
        if error:
            failed += 1
            print(f"ocr-pipeline: {error}", file=sys.stderr)
            docs.append({"file": path, "error": error})
            continue
        doc = pipeline.ocr_image(image, thresholds or None).to_dict()
        docs.append({"file": path, **doc})
        if not args.json:
            header = f"==> {path} <==\n" if len(args.pages) > 1 else ""
            sys.stdout.write(header + doc["text"] + "\n")
    if args.json:
        payload: Any = docs[0] if len(docs) == 1 else {"documents": docs}
        if len(docs) == 1 and "error" in docs[0]:
            payload = {"documents": docs}
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    return 1 if failed else 0


def cmd_detect(args: argparse.Namespace) -> int:
    from .models.factory import detection_predictor

    settings = _settings(args)
    predictor = detection_predictor(args.detector, refiner=args.refiner, settings=settings)
    thresholds = _threshold_overrides(args)
    out, failed = [], 0
    for path, image, error in _each_image(args.pages, settings):
        if error:
            failed += 1
            print(f"ocr-pipeline: {error}", file=sys.stderr)
            out.append({"file": path, "error": error})
            continue
        boxes = predictor.detect(image, thresholds or None)
        out.append({"file": path, "boxes": [b.to_dict() for b in boxes]})
    lines = []
    for item in out:
        for b in item.get("boxes", []):
            coords = ",".join(str(int(round(v))) for pt in b["quad"] for v in pt)
            lines.append(f"{item['file']}\t{coords}\t{b['score']:.3f}")
    _emit(args, out[0] if len(out) == 1 else {"documents": out}, "\n".join(lines))
    return 1 if failed else 0


def cmd_recognize(args: argparse.Namespace) -> int:
    from .models.factory import recognition_predictor

    settings = _settings(args)
    predictor = recognition_predictor(args.recognizer, settings=settings)
    crops, slots, errors = [], [], {}
    for i, (_path, image, error) in enumerate(_each_image(args.crops, settings)):
        if error:
            errors[i] = error
            print(f"ocr-pipeline: {error}", file=sys.stderr)
        else:
            crops.append(image)
            slots.append(i)
    recognized = dict(zip(slots, predictor.predict(crops)))
    results: list[dict[str, Any]] = []
    for i in range(len(args.crops)):
        if i in errors:
            results.append({"text": "", "confidence": 0.0, "error": errors[i]})
        else:
            text, conf = recognized[i]
            results.append({"text": text, "confidence": round(conf, 4)})
    text = "\n".join(f"{p}\t{r['text']}\t{r['confidence']:.4f}" for p, r in zip(args.crops, results))
    _emit(args, {"results": results}, text)
    return 1 if errors else 0


def cmd_models(args: argparse.Namespace) -> int:
    from .errors import WeightsNotFound
    from .models.registry import list_specs
    from .models.weights import resolve_weights

    settings = _settings(args)
    rows = []
    for spec in list_specs():
        try:
            where: str | None = str(resolve_weights(spec, settings.model_dir))
        except WeightsNotFound:
            where = None
        rows.append({**spec.describe(), "path": where})
    text = "\n".join(
        f"{r['name']:<40} {r['task']:<10} {r['arch']:<13} {'available: ' + r['path'] if r['path'] else 'missing (' + r['filename'] + ')'}"
        for r in rows
    )
    payload: dict[str, Any] = {"models": rows}
    if args.load:
        payload["loaded"] = _load_defaults(settings)
        text += "\n\n" + "\n".join(
            f"loaded {r['task']} {r['name']}: {r['runtime']} {r['precision']} in {r['seconds']:.2f} s" for r in payload["loaded"]
        )
    _emit(args, payload, text)
    return 0


def _load_defaults(settings: Any) -> list[dict[str, Any]]:
    """Load the configured detector and recognizer once (this also writes their ONNX exports to
    OCR_CACHE_DIR) and say what runs each."""
    import time

    from .models.factory import detection_predictor, recognition_predictor
    from .models.precision import precision_name

    out = []
    for task, name, load in (("detector", settings.detector, detection_predictor),
                             ("recognizer", settings.recognizer, recognition_predictor)):
        start = time.perf_counter()
        predictor = load(name, settings=settings)
        runtime = getattr(predictor.model, "runtime", "torch")
        out.append({
            "task": task, "name": name, "runtime": runtime,
            # on ONNX Runtime the session says (fp32 or int8); the predictor's autocast dtype is None
            "precision": predictor.model.precision if runtime == "onnx" else precision_name(predictor.precision),
            "seconds": round(time.perf_counter() - start, 3),
        })
    return out


def add_ocr(sub: Any) -> None:
    p = sub.add_parser("ocr", help="read whole pages (detection + recognition, in this process)")
    p.add_argument("pages", nargs="+", metavar="PAGE", help="PNG/JPEG/TIFF/BMP/WebP page images")
    p.add_argument("--json", action="store_true", help="print the document schema as JSON")
    _add_model_args(p, detector=True, recognizer=True)
    p.set_defaults(func=cmd_ocr)


def add_detect(sub: Any) -> None:
    p = sub.add_parser("detect", help="find text boxes on pages")
    p.add_argument("pages", nargs="+", metavar="PAGE")
    p.add_argument("--json", action="store_true", help='print {"boxes": [{"quad", "score"}]} as JSON')
    _add_model_args(p, detector=True, recognizer=False)
    p.set_defaults(func=cmd_detect)


def add_recognize(sub: Any) -> None:
    p = sub.add_parser("recognize", help="read word images (one word per image)")
    p.add_argument("crops", nargs="+", metavar="CROP")
    p.add_argument("--json", action="store_true", help='print {"results": [{"text", "confidence"}]} as JSON')
    _add_model_args(p, detector=False, recognizer=True)
    p.set_defaults(func=cmd_recognize)


def add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list registered models and whether their weights are present")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model-dir")
    p.add_argument("--load", action="store_true",
                   help="also load the configured detector and recognizer (fills OCR_CACHE_DIR with their "
                        "ONNX exports) and say what runs each")
    p.set_defaults(func=cmd_models)


#: Subcommand registrars; later features append theirs (train, eval, synth, bench, ...).
COMMANDS: list[Callable[[Any], None]] = [add_ocr, add_detect, add_recognize, add_models]


def _optional_commands() -> list[Callable[[Any], None]]:
    found = []
    try:
        from .training import cli as training_cli

        found.extend(getattr(training_cli, "COMMANDS", []))
    except ImportError:  # training extras not present
        pass
    try:
        from .evaluation import cli as evaluation_cli

        found.extend(getattr(evaluation_cli, "COMMANDS", []))
    except ImportError:  # evaluation module not present
        pass
    try:
        from .bench import cli as bench_cli

        found.extend(getattr(bench_cli, "COMMANDS", []))
    except ImportError:  # bench module not present
        pass
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocr-pipeline", description="OCR: CRAFT text detection + four-stage text recognition."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS + _optional_commands():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (OCRError, CLIError) as exc:
        print(f"ocr-pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
