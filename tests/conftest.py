"""Shared fixtures: manifests, random checkpoints written from them, rendered pages."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MANIFESTS = SHARED / "specs" / "manifests"

# ONNX exports made by the tests (and by the worker processes they start, which inherit the
# variable) go to one throwaway directory per test run, not to the user's ~/.cache.
if "OCR_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="ocr-test-cache-")
    os.environ["OCR_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)


def manifest_paths() -> list[Path]:
    return sorted(MANIFESTS.glob("*.json")) if MANIFESTS.is_dir() else []


@pytest.fixture(scope="session")
def manifests() -> dict[str, dict]:
    if not MANIFESTS.is_dir():
        pytest.skip(f"checkpoint manifests not found at {MANIFESTS}")
    return {p.stem: json.loads(p.read_text()) for p in manifest_paths()}


def random_state_from_manifest(manifest: dict, seed: int = 0, with_tracked: bool = True) -> dict:
    """A state dict with the manifest's exact keys (``module.`` prefix kept), random values."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    optional = {k for k, *_ in manifest.get("optional_tensors", [])}
    entries = list(manifest["tensors"]) + (list(manifest.get("optional_tensors", [])) if with_tracked else [])
    for key, shape, dtype in entries:
        if dtype == "int64" or key in optional:
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(("P_hat", "inv_delta_C")):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


def save_legacy(state: dict, path: Path) -> Path:
    """Save as the released files are: the legacy (pre-1.6, non-zip) torch.save format."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def render_text_page(words: list[str], size: tuple[int, int] = (640, 480), font_px: int = 28) -> np.ndarray:
    """A clean white RGB page with the given words printed in rows (DejaVu Sans)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", font_px)
    except OSError:
        font = ImageFont.load_default(size=font_px)
    x, y = 30, 30
    for word in words:
        w = draw.textlength(word, font=font)
        if x + w > size[0] - 30:
            x, y = 30, y + int(font_px * 1.8)
        draw.text((x, y), word, fill="black", font=font)
        x += int(w) + font_px
    return np.asarray(img)
