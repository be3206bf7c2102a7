"""Evaluation of OCR engines on word-annotated pages (``ocr-pipeline eval``).

Modules:

- :mod:`.metrics`: IoU, one-to-one matching, detection / end-to-end / recognition counts (pure).
- :mod:`.dataset`: read a ``words.jsonl`` folder, cut ground-truth word crops.
- :mod:`.engines`: the ``Engine`` protocol, ``OursEngine`` and ``TesseractEngine``.
- :mod:`.cli`: the ``eval`` subcommand and :func:`~.cli.run_evaluation`.

Importing this package is cheap (no numpy, no torch); import the modules you need.
"""

from __future__ import annotations

__all__ = ["ENGINE_NAMES", "TASKS"]

#: Engines ``ocr-pipeline eval --engine`` accepts (comma lists allowed).
ENGINE_NAMES: tuple[str, ...] = ("ours", "tesseract")
#: Tasks ``ocr-pipeline eval --task`` accepts.
TASKS: tuple[str, ...] = ("recognition", "detection", "e2e")
