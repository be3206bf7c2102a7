"""``ocr-pipeline bench``: the sequential-vs-batched table against a running stack.

Usage::

    ocr-pipeline bench --url http://127.0.0.1:8000 --docs 10,100 --mode both --clients 4 \\
        [--pages DIR | --boxes 200] [--json OUT.json] [--chart OUT.png] [--timeout 600]

    # throwaway stacks (own redis-server + workers + web, from the repository checkout),
    # one per batch size: crops/s and p95 latency against OCR_BATCH_SIZE
    ocr-pipeline bench --spawn --models noop --docs 100 --mode batched --sweep-batch 50,100,200,350,500

Only loopback URLs are accepted unless ``--allow-remote`` is given. Every run is bounded by
``--docs`` and ``--timeout``. The client needs neither torch nor Celery.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "add_bench", "cmd_bench", "parse_int_list", "MAX_DOCS"]

#: Largest N a single run accepts (a guard against typos; the service bounds its queues too).
MAX_DOCS = 100_000


def parse_int_list(text: str, name: str, low: int = 1, high: int = MAX_DOCS) -> list[int]:
    """``"10,100"`` -> ``[10, 100]``; each value within ``low..high``.

    Raises:
        argparse.ArgumentTypeError: not a comma list of integers in range.
    """
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{name}: expected integers separated by commas, got {text!r}") from exc
    if not values or any(not low <= v <= high for v in values):
        raise argparse.ArgumentTypeError(f"{name}: every value must be between {low} and {high}, got {text!r}")
    return values


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux/macOS
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _progress(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, dynamic_ncols=True, leave=False)


def _pages(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    from .pages import generated_pages, load_pages

    if args.pages:
        return load_pages(args.pages)
    return generated_pages(args.boxes, variants=args.variants)


def _run_mode(args: argparse.Namespace, base: str, mode: str, n: int, pages: list[tuple[str, bytes]]) -> dict[str, Any]:
    from .report import summarize
    from .runner import run_batched, run_sequential

    with _progress(not args.no_progress, n, f"{mode} N={n}") as bar:
        update: Callable[[int], None] | None = bar.update if bar is not None else None
        if mode == "sequential":
            result = run_sequential(base, pages, n, timeout=args.timeout, progress=update)
        else:
            result = run_batched(
                base, pages, n, clients=args.clients, timeout=args.timeout, poll_interval=args.poll,
                files_per_request=args.files_per_request, progress=update,
            )
    summary = summarize(result)
    if summary["crops_per_s"] > 0:
        summary["ms_per_crop"] = round(1000.0 / summary["crops_per_s"], 3)
    return summary


def _warm_up(args: argparse.Namespace, base: str, pages: list[tuple[str, bytes]], modes: list[str]) -> None:
    """Untimed requests first: each web process loads its in-process models on its first /ocr,
    each worker process its predictors on its first document."""
    import threading

    from .runner import run_batched, run_sequential

    if args.warmup <= 0:
        return
    if "sequential" in modes:  # concurrent, so that every gunicorn worker gets one
        threads = [
            threading.Thread(target=run_sequential, args=(base, pages, 1), kwargs={"timeout": args.timeout})
            for _ in range(args.warmup)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if "batched" in modes:
        run_batched(base, pages, args.warmup, clients=args.warmup, timeout=args.timeout, poll_interval=args.poll)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_cpu_seconds(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU seconds (user + system) of a process and its live descendants, from /proc (Linux)."""
    from .memory import tree_pids

    total = 0.0
    for current in tree_pids(pid, children):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
        except OSError:
            pass
    return total


class _Probe:
    """Per-process CPU time and Redis commands of a spawned stack, around one run."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack

    def snapshot(self) -> dict[str, Any]:
        from .memory import process_children

        children = process_children()
        cpu = {name: _tree_cpu_seconds(proc.pid, children) for name, proc in self.stack.procs.items()}
        cpu["bench client"] = sum(os.times()[:2])
        client = self.stack.redis()
        try:
            stats = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in client.info("commandstats").items()}
        finally:
            client.close()
        return {"cpu": cpu, "redis": stats}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], crops: int) -> dict[str, Any]:
        per = max(1, crops)
        cpu = {k: round(1000.0 * (after["cpu"][k] - before["cpu"].get(k, 0.0)) / per, 3) for k in after["cpu"]}
        calls = {k: v - before["redis"].get(k, 0) for k, v in after["redis"].items()}
        calls = {k: round(v / per, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v / per >= 0.01}
        return {
            "cpu_ms_per_crop": {**cpu, "total": round(sum(cpu.values()), 3)},
            "redis_commands_per_crop": {**calls, "total": round(sum(calls.values()), 2)},
        }


def _run_all(
    args: argparse.Namespace, base: str, pages: list[tuple[str, bytes]], modes: list[str], probe: _Probe | None = None
) -> dict[int, dict[str, Any]]:
    from .memory import MemorySampler
    from .report import format_details

    _warm_up(args, base, pages, modes)
    runs: dict[int, dict[str, Any]] = {}
    for n in args.docs:
        runs[n] = {}
        for mode in modes:
            before = probe.snapshot() if probe else None
            if probe:
                pids = {name: proc.pid for name, proc in probe.stack.procs.items()}
                with MemorySampler(pids, interval=args.memory_interval) as sampler:
                    summary = _run_mode(args, base, mode, n, pages)
                summary["memory"] = sampler.summary()
            else:
                summary = _run_mode(args, base, mode, n, pages)
            if probe and before:
                summary["cost"] = probe.delta(before, probe.snapshot(), summary["crops"])
            runs[n][mode] = summary
            print(format_details(n, summary), flush=True)
    return runs


@contextmanager
def _stack(args: argparse.Namespace, batch_size: int | str) -> Iterator[Any]:
    """A throwaway stack from the repository checkout (tests/service/stack.py); yields the Stack."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from tests.service.stack import Stack
    except ImportError as exc:
        raise SystemExit(
            "ocr-pipeline bench: --spawn needs the repository checkout (tests/service/stack.py); "
            "otherwise restart the workers with each OCR_BATCH_SIZE by hand (docs/monitoring.md)"
        ) from exc
    env = {"OCR_WEB_WORKERS": str(args.web_workers)}
    if args.model_dir:
        env["OCR_MODEL_DIR"] = str(args.model_dir)
    with Stack(
        env=env, models=args.models, batch_size=batch_size, batch_timeout=args.batch_timeout,
        detect_concurrency=args.detect_concurrency, web=True, startup_timeout=300,
    ) as stack:
        assert stack.web_url is not None
        yield stack


def cmd_bench(args: argparse.Namespace) -> int:
    from .http import check_url, get_json
    from .report import format_table, table_rows, write_chart

    modes = ["sequential", "batched"] if args.mode == "both" else [args.mode]
    if (
        not 1 <= args.clients <= 256 or not 1 <= args.files_per_request <= 20 or not 0 <= args.warmup <= 8
        or args.timeout <= 0 or args.poll <= 0 or not 0 <= args.boxes <= 2000 or not 0 < args.memory_interval <= 60
    ):
        print(
            "ocr-pipeline bench: --clients 1..256, --files-per-request 1..20, --warmup 0..8, "
            "--timeout/--poll > 0, --boxes 0..2000, --memory-interval 0..60 s (above 0)", file=sys.stderr,
        )
        return 2
    try:
        pages = _pages(args)
    except FileNotFoundError as exc:
        print(f"ocr-pipeline bench: {exc}", file=sys.stderr)
        return 2
    started = time.time()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": _machine(),
        "config": {
            "docs": args.docs, "mode": args.mode, "clients": args.clients, "boxes": None if args.pages else args.boxes,
            "pages": str(args.pages) if args.pages else None, "files_per_request": args.files_per_request,
            "poll": args.poll, "timeout": args.timeout, "warmup": args.warmup,
        },
    }
    sweep = args.sweep_batch
    if args.spawn or sweep:
        report["config"].update({
            "spawned": True, "models": args.models, "batch_timeout": args.batch_timeout,
            "detect_concurrency": args.detect_concurrency, "web_workers": args.web_workers,
        })
        sizes: list[int | str] = list(sweep) if sweep else [args.batch_size]
        report["sweep"] = []
        runs: dict[int, dict[str, Any]] = {}
        for k, size in enumerate(sizes):
            print(f"# stack: OCR_MODELS={args.models} OCR_BATCH_SIZE={size} OCR_BATCH_TIMEOUT={args.batch_timeout}", flush=True)
            with _stack(args, size) as stack:
                base = stack.web_url
                probe = _Probe(stack) if Path("/proc/self/stat").exists() else None
                # the sequential path does not batch: measure it on the first stack only
                these = modes if k == 0 else [m for m in modes if m != "sequential"] or modes
                got = _run_all(args, base, pages, these, probe)
                auto = [line for line in stack.logs("recognize").splitlines() if "OCR_BATCH_SIZE=auto:" in line]
                if auto:
                    report.setdefault("auto_batch", []).append(auto[-1].split("] ", 1)[-1])
                    print("  " + report["auto_batch"][-1], flush=True)
            for n, by_mode in got.items():
                runs.setdefault(n, {}).update({m: s for m, s in by_mode.items() if m not in runs.get(n, {})})
                if "batched" in by_mode:
                    b = by_mode["batched"]
                    report["sweep"].append({
                        "batch_size": size, "docs": n, "seconds": b["seconds"], "docs_per_s": b["docs_per_s"],
                        "crops_per_s": b["crops_per_s"], "p50": b["latency"]["p50"], "p95": b["latency"]["p95"],
                        "mean_batch": b["batch_sizes"]["mean"], "causes": b["batch_sizes"]["causes"],
                    })
        report["url"] = "spawned"
    else:
        try:
            base = check_url(args.url, allow_remote=args.allow_remote)
        except ValueError as exc:
            print(f"ocr-pipeline bench: {exc}", file=sys.stderr)
            return 2
        try:
            status, body = get_json(f"{base}/healthz", timeout=10)
        except OSError as exc:
            status, body = 0, f"{type(exc).__name__}: {exc}"
        if status != 200:
            print(f"ocr-pipeline bench: {base}/healthz answered {status}: {body}", file=sys.stderr)
            return 2
        report["url"] = base
        runs = _run_all(args, base, pages, modes)
    report["machine"]["loadavg_end"] = _machine().get("loadavg")
    report["seconds"] = round(time.time() - started, 2)
    report["runs"] = {str(n): v for n, v in runs.items()}
    rows = table_rows(runs)
    report["table"] = rows
    largest = runs[max(runs)] if runs else {}
    report.update({m: largest[m] for m in ("sequential", "batched") if m in largest})
    print()
    print(format_table(rows))
    if report.get("sweep"):
        print("\n| OCR_BATCH_SIZE | N | seconds | docs/s | crops/s | p50 (s) | p95 (s) | mean batch | causes |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in report["sweep"]:
            causes = ", ".join(f"{k} {v}" for k, v in sorted(s["causes"].items()))
            print(
                f"| {s['batch_size']} | {s['docs']} | {s['seconds']:.2f} | {s['docs_per_s']:.2f} | {s['crops_per_s']:.0f} "
                f"| {s['p50']:.3f} | {s['p95']:.3f} | {s['mean_batch']} | {causes} |"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    chart = args.chart or (Path(args.json).with_suffix(".png") if args.json else None)
    if chart and rows:
        write_chart(rows, chart, title=f"Sequential vs batched ({args.models if args.spawn or sweep else report['url']})")
        print(f"wrote {chart}")
    failed = sum(s.get("failed", 0) for by in runs.values() for s in by.values())
    return 1 if failed else 0


def add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="load-test a running stack: sequential (/ocr) vs batched (/batch_ocr) table, throughput, latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="web app base URL (loopback unless --allow-remote)")
    p.add_argument("--allow-remote", action="store_true", help="allow a URL that is not this machine")
    p.add_argument("--docs", type=lambda s: parse_int_list(s, "--docs"), default=[10], help="N, or a comma list (10,100)")
    p.add_argument("--mode", choices=("sequential", "batched", "both"), default="both")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients in batched mode (default 4)")
    p.add_argument("--files-per-request", type=int, default=1, help="pages per POST /batch_ocr (default 1)")
    p.add_argument("--poll", type=float, default=0.1, help="seconds between polls of a pending document")
    p.add_argument("--pages", type=Path, help="folder of real pages to send (cycled)")
    p.add_argument("--boxes", type=int, default=200, help="words per generated page (default 200)")
    p.add_argument("--variants", type=int, default=8, help="distinct generated pages (default 8)")
    p.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit per run, seconds (default 600)")
    p.add_argument("--warmup", type=int, default=2, help="untimed documents per mode first (model loading; default 2)")
    p.add_argument("--json", type=Path, help="write the report as JSON here (and the chart next to it)")
    p.add_argument("--chart", type=Path, help="PNG chart of the table (default: the --json path with .png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("throwaway stacks (repository checkout only)")
    g.add_argument("--spawn", action="store_true", help="start redis + workers + web for the run (tests/service/stack.py)")
    g.add_argument(
        "--sweep-batch", type=lambda s: parse_int_list(s, "--sweep-batch", high=10_000),
        help="one spawned stack per OCR_BATCH_SIZE (e.g. 50,100,200,350,500)",
    )
    g.add_argument("--memory-interval", type=float, default=2.0,
                   help="seconds between memory samples of a spawned stack's processes (PSS per process tree; "
                        "each sample costs ~0.1 s of CPU with the real models, shown in the report)")
    g.add_argument("--models", default="noop", help="OCR_MODELS of spawned stacks (noop or real)")
    g.add_argument("--model-dir", type=Path, help="OCR_MODEL_DIR of spawned stacks")
    g.add_argument("--batch-size", default="350", help="OCR_BATCH_SIZE of a spawned stack (or auto)")
    g.add_argument("--batch-timeout", type=float, default=0.25, help="OCR_BATCH_TIMEOUT of spawned stacks")
    g.add_argument("--detect-concurrency", type=int, default=2, help="detect worker processes of spawned stacks")
    g.add_argument("--web-workers", type=int, default=2, help="gunicorn workers of spawned stacks")
    p.set_defaults(func=cmd_bench)


#: Read by ``ocr_tasks.cli._optional_commands``.
COMMANDS = [add_bench]
