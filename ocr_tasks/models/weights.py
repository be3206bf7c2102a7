"""Find, read and check weight files. Never downloads anything.

Files resolve from ``OCR_MODEL_DIR`` first, then the package's bundled ``ocr_tasks/weights``.
Reading is always ``torch.load(path, map_location="cpu", weights_only=True)``, which handles
both the legacy (pre-1.6) and the zip ``torch.save`` formats. The ``module.`` prefix that
``nn.DataParallel`` adds is stripped, ``num_batches_tracked`` buffers are optional, and a
``{"state_dict": ...}`` / ``{"model": ...}`` wrapper is unwrapped. The structural check (every
key and shape) is the gate; a sha256 different from the registered one is only logged.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsMismatch, WeightsNotFound
from .registry import BUNDLED_DIR, ModelSpec

__all__ = [
    "UNREADABLE_FILE_ERRORS",
    "resolve_weights",
    "read_state_dict",
    "normalize_state_dict",
    "check_state_dict",
    "load_weights",
    "sha256_file",
    "save_state_dict",
]

log = logging.getLogger(__name__)

_OPTIONAL_SUFFIX = ".num_batches_tracked"
_MAX_LISTED = 12


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(spec: ModelSpec, model_dir: str | Path | None = None) -> Path:
    """Path of ``spec.filename`` in ``model_dir`` (OCR_MODEL_DIR) or the bundled weights.

    Raises:
        WeightsNotFound: with the places searched and what the file must be.
    """
    searched: list[Path] = []
    for base in ([Path(model_dir).expanduser()] if model_dir else []) + [BUNDLED_DIR]:
        candidate = base / spec.filename
        searched.append(candidate)
        if candidate.is_file():
            return candidate
    where = " or ".join(str(p) for p in searched)
    hint = (
        "download the official release and put it in the directory named by OCR_MODEL_DIR"
        if spec.official
        else "train it (`ocr-pipeline train ...`) or put the file in OCR_MODEL_DIR"
    )
    raise WeightsNotFound(
        f"weights for {spec.task} {spec.name!r} not found: looked for {where}. "
        f"Expected a PyTorch state_dict file named {spec.filename!r} ({spec.arch} architecture); {hint}."
    )


#: What ``torch.load`` raises on a file that is not a readable PyTorch file (corrupt, truncated,
#: not a pickle or zip, pickled code objects refused by ``weights_only``).
UNREADABLE_FILE_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    zipfile.BadZipFile,
    OSError,
    AttributeError,
    TypeError,
)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely (weights_only, CPU) and normalise its keys.

    Raises:
        WeightsMismatch: the file is not a readable PyTorch state dict (corrupt, truncated,
            pickled code objects, wrong container).
    """
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except UNREADABLE_FILE_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsMismatch(f"{p}: not a readable PyTorch weights file ({first})") from exc
    return normalize_state_dict(obj, source=str(p))


def normalize_state_dict(obj: object, source: str = "state dict") -> dict[str, torch.Tensor]:
    """Unwrap, strip the ``module.`` prefix and keep only tensors."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "net"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsMismatch(f"{source}: expected a non-empty state_dict mapping, got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    keys = list(obj.keys())
    strip = isinstance(keys[0], str) and keys[0].startswith("module.")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsMismatch(f"{source}: entry {key!r} is not a tensor ({type(value).__name__})")
        name = key.split(".", 1)[1] if strip and key.startswith("module.") else key
        out[name] = value
    return out


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], name: str = "model") -> None:
    """Require the same keys (``num_batches_tracked`` optional) and shapes as ``model``.

    Raises:
        WeightsMismatch: naming the missing keys, unexpected keys and shape differences.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    required = {k for k in expected if not k.endswith(_OPTIONAL_SUFFIX)}
    missing = sorted(required - state.keys())
    unexpected = sorted(k for k in state.keys() - expected.keys())
    shapes = sorted(
        f"{k}: file {list(state[k].shape)} vs model {list(expected[k])}"
        for k in state.keys() & expected.keys()
        if tuple(state[k].shape) != expected[k] and not k.endswith(_OPTIONAL_SUFFIX)
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): {_listing(shapes)}")
        raise WeightsMismatch(f"weights do not fit {name}: " + "; ".join(parts))


def load_weights(model: nn.Module, path: str | Path, spec: ModelSpec) -> nn.Module:
    """Check and load ``path`` into ``model`` (float tensors are cast to the model's dtype)."""
    state = read_state_dict(path)
    check_state_dict(model, state, name=f"{spec.name} ({spec.arch})")
    if spec.sha256:
        actual = sha256_file(path)
        if actual != spec.sha256:
            log.warning(
                "%s: sha256 %s differs from the registered %s (loading anyway: keys and shapes match)",
                path,
                actual,
                spec.sha256,
            )
    target = model.state_dict()
    fixed = {
        k: (v.to(target[k].dtype) if v.is_floating_point() and k in target else v)
        for k, v in state.items()
        if k in target
    }
    model.load_state_dict(fixed, strict=False)
    return model


def save_state_dict(model: nn.Module, path: str | Path, *, half: bool = False) -> str:
    """Save ``model``'s weights (optionally as fp16) and return the file's sha256."""
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in model.state_dict().items()
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, p)
    return sha256_file(p)
