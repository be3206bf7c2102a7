"""Fixtures of the service tests: throwaway stacks (own redis-server, real workers) and pages.

Stacks are shared per session or module because each costs a few seconds to start. Tests
never touch the shared Redis on 6379.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.service.stack import Stack

#: Batch cap and timeout of the shared noop stack (a document has 200 crops, fewer than the cap).
NOOP_BATCH_SIZE = 300
NOOP_BATCH_TIMEOUT = 0.5


def png_bytes(array: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def grid_page(rows: int = 20, cols: int = 10, cell: tuple[int, int] = (40, 60)) -> np.ndarray:
    """A page whose grid cells (aligned with the noop detector's grid) have distinct gray levels.

    Cell ``(r, c)`` has the value ``10 + r * cols + c``, so the noop recognizer reads
    ``w<value>`` there and the expected reading order is ``w10, w11, ...``.
    """
    h, w = cell
    page = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            page[r * h : (r + 1) * h, c * w : (c + 1) * w] = 10 + r * cols + c
    return page


@pytest.fixture(autouse=True)
def _collect_results() -> Iterator[None]:
    """Collect leftover AsyncResults while their stack still runs.

    An AsyncResult unsubscribes from its result channel when it is deleted; one kept alive by
    a reference cycle (an exception traceback) would otherwise try that against a stopped
    redis-server at interpreter exit.
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def noop_stack() -> Iterator[Stack]:
    """Redis + detect worker + recognize worker with the noop models."""
    with Stack(models="noop", batch_size=NOOP_BATCH_SIZE, batch_timeout=NOOP_BATCH_TIMEOUT) as stack:
        yield stack


@pytest.fixture(scope="session")
def page_png() -> bytes:
    """The grid page as PNG (200 boxes with the noop detector)."""
    return png_bytes(grid_page())


@pytest.fixture(scope="session")
def blank_png() -> bytes:
    """A white page: no boxes."""
    return png_bytes(np.full((300, 400, 3), 255, dtype=np.uint8))


@pytest.fixture(scope="module")
def real_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Randomly initialised weights of the default detector and recognizer.

    The detector's last layer is set to a constant region score of 0.9 (link score 0), so
    the random detector finds text (one box over the page) and the real recognizer runs.
    """
    import torch

    from ocr_tasks.models.factory import build_model
    from ocr_tasks.models.registry import get_spec
    from ocr_tasks.models.weights import save_state_dict

    directory = tmp_path_factory.mktemp("models")
    for name in ("craft_light", "crnn_light"):
        spec = get_spec(name)
        model = build_model(spec)
        if name == "craft_light":
            with torch.no_grad():
                model.head[4].weight.zero_()
                model.head[4].bias.copy_(torch.tensor([0.9, 0.0]))
        save_state_dict(model, directory / spec.filename)
    return directory
