"""OCR engines under evaluation: ours (the ocr_tasks models) and Tesseract 5 (reference).

Every engine offers the three evaluation tasks:

- ``recognize(crops)``: read word crops (2-D uint8 grayscale) -> ``[(text, confidence)]``;
- ``detect(image)``: find word boxes on an ``H x W x 3`` RGB page -> ``[quad]``;
- ``ocr(image)``: both -> ``[(quad, text)]`` (words with empty text are left out).

Quads are ``[[x, y] x 4]`` clockwise from the top-left corner, in page pixels.

Tesseract settings (chosen on synthetic pages rendered for the purpose, never on an eval set):

- Pages: ``tesseract page.png stdout --psm 11 tsv`` (sparse text: find as much text as
  possible in no particular order), keeping the level-5 (word) rows with non-empty text.
  Measured on 12 synthetic form-like pages (labels, values, rules, boxed cells; 6 DejaVu and
  Liberation faces; grey ink, blur and noise) in two settings, psm 11 beat psm 3 (fully automatic
  page segmentation) on both:

  =====================================  ==============  ==============
  setting                                psm 3 H / F1    psm 11 H / F1
  =====================================  ==============  ==============
  clean, 13-30 px (881 words)            0.984 / 0.972   0.999 / 0.987
  hard, 10-16 px, noisy (1,299 words)    0.808 / 0.549   0.860 / 0.586
  =====================================  ==============  ==============

  (H = detection H-mean, F1 = end-to-end exact F1.) ``--tesseract-psm 3`` selects psm 3.
- Crops: ``--psm 7`` (one text line) on the tight crop, with a 10 px margin of the crop's
  median border colour around it. Tesseract needs background around the text; without it a
  clean 40 px "Invoice" is read "INVOICe". On the synthetic crops of the same pages, exact word
  accuracy went from 0.463 to 0.841 (clean) and from 0.184 to 0.627 (hard) with the margin. The
  margin holds no page pixels, so both engines see the same crop content. Crops go to one
  Tesseract process per batch (a list file of PNGs), so the model loads once per batch, not once
  per crop.
- Always ``OMP_THREAD_LIMIT=1``: one thread per process (Tesseract's OpenMP does not help on
  small images and would compete with other work on the machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..errors import OCRError
from ..schemas import Quad
from . import ENGINE_NAMES

__all__ = [
    "Engine",
    "EngineError",
    "TesseractNotFound",
    "OursEngine",
    "TesseractEngine",
    "parse_tesseract_tsv",
    "ENGINE_NAMES",
    "make_engine",
]

TESSERACT_PACKAGE = "tesseract-ocr"


class EngineError(OCRError):
    """An engine could not run (missing program, failed subprocess)."""


class TesseractNotFound(EngineError):
    """The ``tesseract`` program is not installed."""


@runtime_checkable
class Engine(Protocol):
    """What the evaluation needs from an OCR engine."""

    name: str

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Read word crops (2-D uint8) -> ``(text, confidence in [0, 1])`` each, same order."""
        ...

    def detect(self, image: np.ndarray) -> list[Quad]:
        """Word quads found on an RGB page."""
        ...

    def ocr(self, image: np.ndarray) -> list[tuple[Quad, str]]:
        """Words (quad, text) read from an RGB page; no empty texts."""
        ...


def _rect_quad(x0: float, y0: float, x1: float, y1: float) -> Quad:
    return [[float(x0), float(y0)], [float(x1), float(y0)], [float(x1), float(y1)], [float(x0), float(y1)]]


class OursEngine:
    """The ocr_tasks detector and recognizer, loaded from the registry by name.

    Predictors are loaded on first use (or by :meth:`prepare`), so a recognition run never
    loads the detector. Already built predictors can be passed in (tests, notebooks).

    Args:
        detector: Registered detector name (None: the settings' default).
        recognizer: Registered recognizer name (None: the settings' default).
        refiner: Registered link refiner name (None: the settings' default, "" none).
        settings: :class:`ocr_tasks.settings.Settings` (None: from the environment).
        thresholds: Detection post-processing overrides (``text_threshold``, ...).
        detection: A ready detection predictor (``.detect(image, thresholds)``).
        recognition: A ready recognition predictor (``.predict(crops)``).
    """

    name = "ours"

    def __init__(
        self,
        detector: str | None = None,
        recognizer: str | None = None,
        refiner: str | None = None,
        settings: Any = None,
        thresholds: Mapping[str, Any] | None = None,
        detection: Any = None,
        recognition: Any = None,
    ) -> None:
        self.detector_name = detector
        self.recognizer_name = recognizer
        self.refiner_name = refiner
        self.settings = settings
        self.thresholds = dict(thresholds) if thresholds else None
        self._detection = detection
        self._recognition = recognition

    @property
    def detection(self) -> Any:
        """The detection predictor (loaded on first access)."""
        if self._detection is None:
            from ..models.factory import detection_predictor

            self._detection = detection_predictor(
                self.detector_name, refiner=self.refiner_name, settings=self.settings
            )
        return self._detection

    @property
    def recognition(self) -> Any:
        """The recognition predictor (loaded on first access)."""
        if self._recognition is None:
            from ..models.factory import recognition_predictor

            self._recognition = recognition_predictor(self.recognizer_name, settings=self.settings)
        return self._recognition

    def prepare(self, task: str) -> None:
        """Load what ``task`` needs now, so loading is not counted in the timings."""
        if task in ("detection", "e2e"):
            _ = self.detection
        if task in ("recognition", "e2e"):
            _ = self.recognition

    def describe(self) -> dict[str, Any]:
        """Engine settings for the report."""
        return {
            "detector": self.detector_name or getattr(self.settings, "detector", None),
            "recognizer": self.recognizer_name or getattr(self.settings, "recognizer", None),
            "refiner": self.refiner_name,
            "thresholds": self.thresholds,
        }

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Read crops with the recognizer (batched by the predictor)."""
        if not crops:
            return []
        return [(str(t), float(c)) for t, c in self.recognition.predict(list(crops))]

    def detect(self, image: np.ndarray) -> list[Quad]:
        """Word quads from the detector."""
        return [[list(map(float, p)) for p in b.quad] for b in self.detection.detect(image, self.thresholds)]

    def ocr(self, image: np.ndarray) -> list[tuple[Quad, str]]:
        """Detect, crop and read the page exactly as ``ocr-pipeline ocr`` does."""
        from ..pipeline import OCRPipeline

        doc = OCRPipeline(self.detection, self.recognition).ocr_image(image, self.thresholds)
        return [(w.quad, w.text) for w in doc.words if w.text]


def parse_tesseract_tsv(tsv: str) -> list[dict[str, Any]]:
    """Word rows (level 5, non-empty text) of Tesseract's TSV output.

    Args:
        tsv: The text printed by ``tesseract IMAGE stdout tsv``.

    Returns:
        One dict per word: ``page`` (1-based), ``block``, ``par``, ``line``, ``word``,
        ``box`` ``(x0, y0, x1, y1)``, ``conf`` (0..100) and ``text`` (stripped), in output order.
    """
    words: list[dict[str, Any]] = []
    for row in tsv.splitlines():
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = "\t".join(cols[11:]).strip()
        if not text:
            continue
        try:
            page, block, par, line, word, left, top, width, height = (int(c) for c in cols[1:10])
            conf = float(cols[10])
        except ValueError:
            continue
        words.append(
            {
                "page": page,
                "block": block,
                "par": par,
                "line": line,
                "word": word,
                "box": (left, top, left + width, top + height),
                "conf": conf,
                "text": text,
            }
        )
    return words


def _pad_crop(crop: np.ndarray, pad: int) -> np.ndarray:
    """Surround ``crop`` with ``pad`` pixels of its median border colour (grayscale out)."""
    gray = crop if crop.ndim == 2 else np.asarray(Image.fromarray(crop).convert("L"))
    margin = int(pad)
    if margin <= 0:
        return gray
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    value = int(np.median(border))
    return np.pad(gray, margin, mode="constant", constant_values=value)


class TesseractEngine:
    """Tesseract 5 through its command-line program (no Python binding needed).

    Args:
        psm: Page segmentation mode for whole pages (``detect``/``ocr``): 11 or 3.
        lang: Tesseract language(s), e.g. ``eng``.
        crop_pad: Margin (pixels) added around recognition crops; 0 for none.
        batch: Most crops sent to one Tesseract process.
        binary: Program to run (default: ``tesseract`` on PATH).
        timeout: Seconds one Tesseract process may take.

    Raises:
        TesseractNotFound: If the program is not installed.
    """

    name = "tesseract"

    def __init__(
        self,
        psm: int = 11,
        lang: str = "eng",
        crop_pad: int = 10,
        batch: int = 256,
        binary: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        found = shutil.which(binary or "tesseract")
        if found is None:
            raise TesseractNotFound(
                f"the {binary or 'tesseract'!r} program was not found on PATH; install Tesseract 5 "
                f"(Debian/Ubuntu: apt-get install -y {TESSERACT_PACKAGE})"
            )
        self.binary = found
        self.psm = int(psm)
        self.lang = lang
        self.crop_pad = max(0, int(crop_pad))
        self.batch = max(1, int(batch))
        self.timeout = timeout
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def version(self) -> str:
        """First line of ``tesseract --version`` (e.g. ``tesseract 5.3.0``)."""
        out = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, env=self._env, timeout=60
        )
        return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else ""

    def describe(self) -> dict[str, Any]:
        """Engine settings for the report."""
        return {
            "version": self.version(),
            "page_psm": self.psm,
            "crop_psm": 7,
            "lang": self.lang,
            "crop_pad": self.crop_pad,
        }

    def _run(self, source: Path, psm: int) -> str:
        cmd = [self.binary, str(source), "stdout", "-l", self.lang, "--psm", str(psm), "tsv"]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=self._env, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"tesseract took more than {self.timeout:.0f} s on {source}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            raise EngineError(f"tesseract failed (exit {proc.returncode}) on {source}: {' | '.join(tail)}")
        return proc.stdout

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Read each crop as one text line (``--psm 7``); words on the line are joined by spaces."""
        results: list[tuple[str, float]] = []
        for start in range(0, len(crops), self.batch):
            results.extend(self._recognize_batch(crops[start : start + self.batch]))
        return results

    def _recognize_batch(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        with tempfile.TemporaryDirectory(prefix="ocr-eval-tess-") as tmp:
            paths = []
            for i, crop in enumerate(crops):
                path = Path(tmp) / f"{i:05d}.png"
                Image.fromarray(_pad_crop(np.asarray(crop, dtype=np.uint8), self.crop_pad)).save(
                    path, compress_level=1
                )
                paths.append(str(path))
            listing = Path(tmp) / "crops.txt"
            listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
            source = listing if len(paths) > 1 else Path(paths[0])
            words = parse_tesseract_tsv(self._run(source, 7))
        per_page: dict[int, list[dict[str, Any]]] = {}
        for w in words:
            per_page.setdefault(w["page"], []).append(w)
        out: list[tuple[str, float]] = []
        for page in range(1, len(crops) + 1):
            found = per_page.get(page, [])
            text = " ".join(w["text"] for w in found)
            conf = float(np.mean([max(w["conf"], 0.0) for w in found])) / 100.0 if found else 0.0
            out.append((text, conf))
        return out

    def _page_words(self, image: np.ndarray) -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="ocr-eval-tess-") as tmp:
            path = Path(tmp) / "page.png"
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, compress_level=1)
            return parse_tesseract_tsv(self._run(path, self.psm))

    def detect(self, image: np.ndarray) -> list[Quad]:
        """Word boxes (level 5, non-empty text) of the page."""
        return [_rect_quad(*w["box"]) for w in self._page_words(image)]

    def ocr(self, image: np.ndarray) -> list[tuple[Quad, str]]:
        """Words and their text from one Tesseract run on the page."""
        return [(_rect_quad(*w["box"]), w["text"]) for w in self._page_words(image)]


def make_engine(name: str, **options: Any) -> Engine:
    """Build an engine by name.

    Args:
        name: ``ours`` or ``tesseract``.
        **options: Keyword arguments of :class:`OursEngine` or :class:`TesseractEngine`.

    Raises:
        ValueError: If the name is unknown.
    """
    if name == "ours":
        return OursEngine(**options)
    if name == "tesseract":
        return TesseractEngine(**options)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
