"""Pieces both trainers share: device names, the learning-rate schedule, atomic checkpoints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["resolve_device_name", "warmup_cosine_lr", "atomic_save", "bounded", "bounded_list", "multiple_of",
           "json_object", "add_run_arguments", "run_config_kwargs", "amp_dtype", "slim_checkpoint",
           "restore_optimizer", "NonFiniteGuard", "MAX_BAD_STEPS", "MAX_DUMPS"]


def resolve_device_name(name: str) -> str:
    """"auto" -> "cuda" when available, else "cpu"; other names pass through."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def warmup_cosine_lr(
    step: int, lr: float, warmup: int, steps: int, fresh_from: int = 0, cosine_from: int = 0
) -> float:
    """Linear warmup to ``lr``, then cosine decay to 2% of it at ``steps``.

    ``fresh_from``: the step at which the optimiser started from empty moments (a resume from a
    weights-only slim checkpoint, see :func:`slim_checkpoint`). The rate is warmed up again from
    there, so fresh Adam moments do not take full-size steps on trained weights.

    ``cosine_from``: where the schedule begins (0: the run's first step). A resumed run that
    sets it restarts the schedule there: warmup and the whole cosine then fit in
    ``[cosine_from, steps)``, so a short continuation decays from ``lr`` to 2% of it instead of
    running along the flat tail of a cosine laid over all ``steps``.
    """
    step_in = max(0, step - cosine_from)
    span = max(1, steps - cosine_from)
    if step_in < warmup:
        return lr * (step_in + 1) / warmup
    progress = (step_in - warmup) / max(1, span - warmup)
    rate = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    if fresh_from > 0 and step - fresh_from < warmup:
        rate *= (step - fresh_from + 1) / warmup
    return rate


def atomic_save(path: Path, **state: Any) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half checkpoint."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def slim_checkpoint(src: Path, dst: Path, moments: bool = True) -> dict[str, Any]:
    """Write a small resumable copy of a training run's ``last.pt`` (the kind committed to the repo).

    Keeps the weights in float16, the step, data position, best score and run config, and (with
    ``moments``) Adam's second moments in bfloat16. The first moments are dropped: they follow the
    gradient within ~10 steps (beta1 = 0.9), while the second moments average over ~1,000 steps
    (beta2 = 0.999) and set the size of every update. A resumption from weights alone starts them
    empty and has to warm the rate up again (docs/MODEL_CARD.md, session 6: a restart that way
    lost held-out accuracy that 6,000 further steps did not win back).

    Returns:
        ``{"step", "bytes", "moments"}`` of the written file.
    """
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    out: dict[str, Any] = {k: ckpt[k] for k in ("step", "pages_done", "best", "config", "scaler") if k in ckpt}
    out["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    kept = bool(moments and "optimizer" in ckpt)
    if kept:
        opt = ckpt["optimizer"]
        out["optimizer_slim"] = {
            "param_groups": opt["param_groups"],
            "state": {i: {"step": st["step"], "exp_avg_sq": st["exp_avg_sq"].to(torch.bfloat16)}
                      for i, st in opt["state"].items()},
        }
    atomic_save(Path(dst), **out)
    return {"step": int(out.get("step", 0)), "bytes": Path(dst).stat().st_size, "moments": kept}


def restore_optimizer(optimizer: Any, ckpt: dict[str, Any]) -> bool:
    """Load a checkpoint's optimiser state: the full one, or a slim checkpoint's second moments
    (first moments start at zero). False when it has none (weights-only slim checkpoint)."""
    import torch

    if "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
        return True
    slim = ckpt.get("optimizer_slim")
    if not slim:
        return False
    state = {}
    for i, st in slim["state"].items():
        second = st["exp_avg_sq"].float()
        state[i] = {"step": st["step"], "exp_avg": torch.zeros_like(second), "exp_avg_sq": second}
    optimizer.load_state_dict({"state": state, "param_groups": slim["param_groups"]})
    return True


def bounded(kind: type, low: float, name: str, strict: bool = False, high: float | None = None) -> Any:
    """An argparse type: ``kind`` parsed from text, at least ``low`` (above it when ``strict``)
    and at most ``high`` when given; anything else is refused with a message naming the option."""
    import argparse

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{name} must be {'>' if strict else '>='} {low}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{name} must be <= {high}, got {text!r}")
        return value

    return parse


def bounded_list(kind: type, low: float, name: str, strict: bool = False) -> Any:
    """An argparse type: a comma-separated list of ``kind`` values, each checked as by
    :func:`bounded`; an empty list is refused."""
    import argparse

    one = bounded(kind, low, name, strict)

    def parse(text: str) -> tuple[Any, ...]:
        values = tuple(one(v.strip()) for v in text.split(",") if v.strip())
        if not values:
            raise argparse.ArgumentTypeError(f"{name} needs at least one value, got {text!r}")
        return values

    return parse


def multiple_of(step: int, name: str) -> Any:
    """An argparse type: a positive integer that is a multiple of ``step``."""
    import argparse

    positive = bounded(int, 1, name)

    def parse(text: str) -> int:
        value = positive(text)
        if value % step:
            raise argparse.ArgumentTypeError(f"{name} must be a multiple of {step}, got {text!r}")
        return value

    return parse


def json_object(name: str) -> Any:
    """An argparse type: a JSON object (``'{"key": value}'``) parsed to a dict."""
    import argparse
    import json

    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name} must be a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{name} must be a JSON object, got {type(value).__name__}")
        return value

    return parse


def add_run_arguments(p: Any, *, out: str, steps: int, batch_size: int, lr: float, warmup: int,
                      val_every: int, ckpt_every: int, workers_help: str) -> None:
    """The arguments every ``train`` target shares (run directory, schedule, device, checkpoints)."""
    p.add_argument("--out", default=out, help="run directory (checkpoints, logs)")
    p.add_argument("--steps", type=bounded(int, 1, "--steps"), default=steps)
    p.add_argument("--batch-size", type=bounded(int, 1, "--batch-size"), default=batch_size)
    p.add_argument("--lr", type=bounded(float, 0, "--lr", strict=True), default=lr, help="peak learning rate")
    p.add_argument("--warmup", type=bounded(int, 0, "--warmup"), default=warmup, help="linear warmup steps")
    p.add_argument("--cosine-from", type=bounded(int, 0, "--cosine-from"), default=0, metavar="STEP",
                   help="restart the warmup + cosine schedule at STEP (a resumed run's new schedule "
                        "then spans STEP..--steps; default 0: the whole run)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision (default: fp16 on CUDA, bf16 on CPUs with native bf16)")
    p.add_argument("--workers", type=bounded(int, 0, "--workers"), default=1, help=workers_help)
    p.add_argument("--val-every", type=bounded(int, 1, "--val-every"), default=val_every)
    p.add_argument("--ckpt-every", type=bounded(int, 1, "--ckpt-every"), default=ckpt_every)
    p.add_argument("--threads", type=bounded(int, 0, "--threads"), default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")


def run_config_kwargs(args: Any) -> dict[str, Any]:
    """The config fields :func:`add_run_arguments` parsed, by their config names.

    Raises:
        CLIError: ``--cosine-from`` is not below ``--steps``.
    """
    if args.cosine_from >= args.steps:
        from ..cli import CLIError

        raise CLIError(f"--cosine-from ({args.cosine_from}) must be below --steps ({args.steps})")
    return {
        "out_dir": args.out, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "warmup": args.warmup, "cosine_from": args.cosine_from, "seed": args.seed, "device": resolve_device_name(args.device),
        "amp": not args.no_amp, "workers": args.workers, "val_every": args.val_every,
        "ckpt_every": args.ckpt_every, "threads": args.threads,
    }


def amp_dtype(amp: bool, device: Any) -> Any:
    """Mixed-precision dtype of a training run: float16 (with a GradScaler) on CUDA, bfloat16
    on a CPU with native bf16 dot products, else None (float32). On this repo's AMD Zen 4
    development machine bf16 made a fixed-shape recognizer step 1.9x faster, and the real
    recognizer run (varying crop widths) about 1.2x faster."""
    import torch

    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    from ..models.precision import cpu_has_native_bf16

    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None


#: A run stops when this many steps in a row had a non-finite loss or gradient (all skipped).
MAX_BAD_STEPS = 50
#: The first this many skipped batches are saved to ``out_dir/nonfinite/`` for diagnosis.
MAX_DUMPS = 5


class NonFiniteGuard:
    """Keeps one bad step from poisoning a run: a step whose loss or gradient norm is not finite
    is skipped, with the model's buffers (BatchNorm statistics) put back as they were before its
    forward pass; weights and optimiser moments are untouched because the optimiser does not step.

    Session 7 lost a recognizer run when one bf16 step produced a NaN gradient and every later
    checkpoint saved NaN weights. Both trainers use this guard the same way::

        guard.snapshot()                     # before the forward pass
        ... loss.backward(); norm = clip_grad_norm_(...)
        if guard.ok(step, loss, norm, lambda: {"images": ...}):
            optimizer.step()

    The first ``max_dumps`` skipped batches are saved to ``out_dir/nonfinite/stepN.pt`` (what the
    callable returns, plus the step and loss) so the step can be replayed offline; ``max_bad``
    skipped steps in a row raise :class:`FloatingPointError`. With fp16 and a GradScaler, pass
    ``enabled=False``: the scaler skips such steps itself.
    """

    def __init__(self, model: Any, out_dir: Path, *, max_bad: int = MAX_BAD_STEPS, max_dumps: int = MAX_DUMPS,
                 enabled: bool = True, log: Any = None) -> None:
        self.model, self.out_dir, self.max_bad, self.max_dumps = model, Path(out_dir), max_bad, max_dumps
        self.enabled = enabled
        self.skipped = 0
        self.bad_run = 0
        self._buffers: list[Any] = []
        self._log = log

    def snapshot(self) -> None:
        """Remember the model's buffers (a few KB) before a forward pass changes them."""
        if self.enabled:
            self._buffers = [b.detach().clone() for b in self.model.buffers()]

    def ok(self, step: int, loss: Any, norm: Any, batch: Any = None) -> bool:
        """True when the step may be taken; otherwise undo, count, maybe dump, maybe raise."""
        import torch

        if not self.enabled or (bool(torch.isfinite(loss)) and bool(torch.isfinite(torch.as_tensor(norm)))):
            self.bad_run = 0
            return True
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), self._buffers):
                b.copy_(saved)
        self.skipped += 1
        self.bad_run += 1
        where = ""
        if self.skipped <= self.max_dumps and batch is not None:
            dump = self.out_dir / "nonfinite" / f"step{step}.pt"
            dump.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"step": step, "loss": float(loss.detach()), **batch()}, dump)
            where = f"; batch saved to {dump}"
        if self._log is not None:
            self._log.warning("step %d: non-finite loss or gradient, step skipped (%d so far)%s",
                              step, self.skipped, where)
        if self.bad_run >= self.max_bad:
            raise FloatingPointError(
                f"{self.bad_run} training steps in a row gave a non-finite loss or gradient (at step {step}); "
                f"the last checkpoint in {self.out_dir} holds the weights before them: lower --lr or use --no-amp")
        return False
