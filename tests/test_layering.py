"""Layering rules: the model library never imports celery or flask; importing the package is light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

LIBRARY_MODULES = [
    "ocr_tasks.pipeline",
    "ocr_tasks.models.factory",
    "ocr_tasks.models.detection.predictor",
    "ocr_tasks.models.recognition.predictor",
    "ocr_tasks.imaging",
    "ocr_tasks.geometry",
    "ocr_tasks.cli",
]


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_library_imports_no_celery_or_flask(module):
    mods = imported_after(module)
    assert not {m for m in mods if m.split(".")[0] in ("celery", "flask", "kombu")}


def test_package_import_is_light():
    mods = imported_after("ocr_tasks")
    assert "torch" not in mods and "celery" not in mods
