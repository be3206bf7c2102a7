"""Weights for timing the real models when the bundled ones are not exported yet.

Writes ``craft_light.pth`` and ``crnn_light.pth`` into a directory to use as ``OCR_MODEL_DIR``:
randomly initialised (the compute cost of a forward pass does not depend on the weights), or,
for the detector, a training checkpoint (``--detector-checkpoint runs/detector/best.pth``) so
that it finds the words of a page (a random detector finds an arbitrary number of boxes, and
the recognizer's load is proportional to the boxes). The checkpoint is only read.

    python benchmarks/make_bench_weights.py /tmp/bench-weights [--detector-checkpoint PATH]
    ocr-pipeline bench --spawn --models real --model-dir /tmp/bench-weights --docs 10,100
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory to write the .pth files into")
    parser.add_argument("--detector-checkpoint", type=Path, help="a craft_light state dict (e.g. runs/detector/best.pth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from ocr_tasks.models.factory import build_model
    from ocr_tasks.models.registry import get_spec
    from ocr_tasks.models.weights import save_state_dict

    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    rec = get_spec("crnn_light")
    save_state_dict(build_model(rec), args.out / rec.filename)
    det = get_spec("craft_light")
    model = build_model(det)
    source = "random initialisation"
    if args.detector_checkpoint:
        with tempfile.TemporaryDirectory() as tmp:  # a private copy: a training run may be writing it
            copy = Path(tmp) / "detector.pth"
            shutil.copy(args.detector_checkpoint, copy)
            obj = torch.load(copy, map_location="cpu", weights_only=True)
        state = obj.get("model", obj) if isinstance(obj, dict) and "model" in obj else obj
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
        source = str(args.detector_checkpoint)
    save_state_dict(model, args.out / det.filename)
    print(f"{args.out}: {rec.filename} (random initialisation), {det.filename} ({source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
