"""Statistics of bench runs, the sequential-vs-batched table, JSON and a PNG chart (Pillow only).

The table is the original system's: documents, sequential seconds, batched seconds, seconds
saved, % saved; followed by documents/s, crops/s, document latency percentiles (the server's
``timings.total``: upload to assembled document), recognition batch sizes and flush causes
(size vs timeout), and the mean/p50/p95 of every stage.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .runner import RunResult

__all__ = [
    "percentile",
    "summarize",
    "batch_stats",
    "table_rows",
    "format_table",
    "format_details",
    "write_chart",
    "BATCH_BINS",
]

#: Upper bounds of the batch size distribution printed and written (crops per recognizer call).
BATCH_BINS = (1, 10, 25, 50, 100, 150, 200, 250, 300, 350, 400, 500, 700, 1000)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def _dist(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(sum(values) / len(values), 4) if values else 0.0,
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4) if values else 0.0,
    }


def batch_stats(documents_batches: Iterable[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Distinct recognizer calls seen in the documents' ``batches`` and their sizes and causes.

    A flush shared by several documents is counted once (by its ``id``); entries without an id
    count as ``crops / size`` of a batch each, which adds up to one per batch when every
    document of the batch is in the run.
    """
    by_id: dict[str, tuple[int, str, float]] = {}
    anonymous: Counter[tuple[int, str]] = Counter()
    anon_weight: dict[tuple[int, str], float] = {}
    for batches in documents_batches:
        for b in batches:
            size, cause = int(b.get("size", 0)), str(b.get("cause", ""))
            if b.get("id"):
                by_id[str(b["id"])] = (size, cause, float(b.get("seconds", 0.0)))
            elif size > 0:
                anonymous[(size, cause)] += 1
                anon_weight[(size, cause)] = anon_weight.get((size, cause), 0.0) + int(b.get("crops", 0)) / size
    sizes: list[tuple[int, str, float]] = list(by_id.values())
    for key, weight in anon_weight.items():
        sizes.extend([(key[0], key[1], 0.0)] * max(1, round(weight)))
    count = len(sizes)
    crops = sum(s for s, _, _ in sizes)
    histogram: dict[str, int] = {}
    lower = 0
    for bound in BATCH_BINS:
        n = sum(1 for s, _, _ in sizes if lower < s <= bound)
        if n:
            histogram[f"{lower + 1}-{bound}" if bound > lower + 1 else str(bound)] = n
        lower = bound
    over = sum(1 for s, _, _ in sizes if s > BATCH_BINS[-1])
    if over:
        histogram[f">{BATCH_BINS[-1]}"] = over
    seconds = [sec for _, _, sec in sizes if sec > 0]
    return {
        "count": count,
        "mean": round(crops / count, 1) if count else 0.0,
        # the batch size an average crop ran in (large batches weigh more)
        "crop_weighted_mean": round(sum(s * s for s, _, _ in sizes) / crops, 1) if crops else 0.0,
        "p50": percentile([s for s, _, _ in sizes], 50),
        "max": max((s for s, _, _ in sizes), default=0),
        "histogram": histogram,
        "causes": dict(Counter(c for _, c, _ in sizes)),
        "recognizer_seconds": round(sum(seconds), 4),
    }


def summarize(result: RunResult) -> dict[str, Any]:
    """Throughput, latency, stages and batching of one run (JSON-ready)."""
    ok = [r for r in result.records if r.ok]
    failed = [r for r in result.records if not r.ok]
    crops = sum(r.boxes for r in ok)
    seconds = max(result.seconds, 1e-9)
    latency = [r.timings.get("total", r.client_seconds) for r in ok]
    stages: dict[str, dict[str, float]] = {}
    for name in sorted({k for r in ok for k in r.timings}):
        stages[name] = _dist([r.timings[name] for r in ok if name in r.timings])
    out: dict[str, Any] = {
        "mode": result.mode,
        "docs": result.docs,
        "ok": len(ok),
        "failed": len(failed),
        "timed_out": result.timed_out,
        "seconds": round(result.seconds, 3),
        "docs_per_s": round(len(ok) / seconds, 3),
        "crops": crops,
        "crops_per_s": round(crops / seconds, 1),
        "latency": _dist(latency),
        "client_latency": _dist([r.client_seconds for r in ok]),
        "stages": stages,
        "clients": result.clients,
        "requests": dict(result.requests),
    }
    if failed:
        out["errors"] = dict(Counter(r.error[:160] for r in failed).most_common(5))
    if result.mode == "batched":
        out["batch_sizes"] = batch_stats(r.batches for r in ok)
    return out


def table_rows(summaries: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """``{N: {"sequential": summary, "batched": summary}}`` -> the original table's rows."""
    rows = []
    for n in sorted(summaries):
        seq = summaries[n].get("sequential")
        bat = summaries[n].get("batched")
        row: dict[str, Any] = {
            "documents": n,
            "sequential_s": seq["seconds"] if seq else None,
            "batched_s": bat["seconds"] if bat else None,
        }
        if seq and bat:
            row["saved_s"] = round(seq["seconds"] - bat["seconds"], 2)
            row["saved_pct"] = round(100.0 * (seq["seconds"] - bat["seconds"]) / seq["seconds"], 1) if seq["seconds"] else 0.0
        rows.append(row)
    return rows


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The original system's table, as Markdown."""
    lines = [
        "| Documents | Sequential (s) | Batched (s) | Saved (s) | Saved (%) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['documents']} | {_num(row['sequential_s'])} | {_num(row['batched_s'])} | "
            f"{_num(row.get('saved_s'))} | {_num(row.get('saved_pct'), 1)} |"
        )
    return "\n".join(lines)


def format_details(n: int, summary: Mapping[str, Any]) -> str:
    """Throughput, latency percentiles, batching and per-stage time of one run, as text."""
    lat = summary["latency"]
    lines = [
        f"{summary['mode']} N={n}: {summary['ok']}/{summary['docs']} ok in {summary['seconds']:.2f} s"
        + (" (TIMED OUT)" if summary["timed_out"] else "")
        + f" | {summary['docs_per_s']:.2f} docs/s | {summary['crops_per_s']:.0f} crops/s"
        + f" | latency p50 {lat['p50']:.3f} s p95 {lat['p95']:.3f} s p99 {lat['p99']:.3f} s",
    ]
    if summary.get("stages"):
        parts = [f"{k} {v['mean']:.3f}/{v['p50']:.3f}/{v['p95']:.3f}" for k, v in summary["stages"].items()]
        lines.append("  stages (mean/p50/p95 s): " + ", ".join(parts))
    batches = summary.get("batch_sizes")
    if batches:
        hist = " ".join(f"[{k}]:{v}" for k, v in batches["histogram"].items())
        causes = ", ".join(f"{k} {v}" for k, v in sorted(batches["causes"].items()))
        lines.append(
            f"  recognition batches: {batches['count']} (mean {batches['mean']}, crop-weighted "
            f"{batches['crop_weighted_mean']}, max {batches['max']}) causes: {causes or '-'} | sizes {hist}"
        )
    cost = summary.get("cost")
    if cost:
        cpu = ", ".join(f"{k} {v:.3f}" for k, v in cost["cpu_ms_per_crop"].items())
        lines.append(f"  CPU ms per crop: {cpu}")
        top = list(cost["redis_commands_per_crop"].items())
        lines.append("  Redis commands per crop: " + ", ".join(f"{k} {v}" for k, v in top[:12]))
    memory = summary.get("memory")
    if memory and memory.get("processes"):
        parts = [
            f"{k} {v['second_tenth_mb']:.0f}->{v['last_tenth_mb']:.0f} ({v['growth_pct']:+.1f}%, max {v['max_mb']:.0f})"
            for k, v in memory["processes"].items()
        ]
        line = "  memory MiB PSS, 2nd tenth -> last tenth of the run: " + ", ".join(parts)
        if "sampler_cpu_s" in memory:
            line += (f" [{memory['samples']} samples every {memory['interval_s']:g} s; sampler CPU "
                     f"{memory['sampler_cpu_s']:.1f} s = {memory['sampler_cpu_pct']:.1f}% of one core]")
        lines.append(line)
    if summary.get("errors"):
        lines.append("  errors: " + "; ".join(f"{k} x{v}" for k, v in summary["errors"].items()))
    return "\n".join(lines)


def write_chart(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "Sequential vs batched") -> Path:
    """A bar chart of the table (sequential and batched seconds per N) as PNG, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 900, 520
    left, right, top, bottom = 90, 30, 60, 90
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=14)
        big = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1
        font = big = ImageFont.load_default()
    draw.text((left, 18), title, fill="black", font=big)
    values = [v for r in rows for v in (r.get("sequential_s"), r.get("batched_s")) if v and v > 0]
    vmax = max(values, default=1.0) * 1.1
    plot_h = height - top - bottom
    plot_w = width - left - right
    # Ns of different magnitudes (10, 100, 1000 documents): a log axis keeps every bar readable
    log = bool(values) and max(values) / min(values) > 30
    if log:
        lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        hi = hi if hi > lo else lo + 1

        def frac(v: float) -> float:
            return max(0.0, (math.log10(max(v, 10.0**lo)) - lo) / (hi - lo))

        ticks = [10.0**e for e in range(lo, hi + 1)]
    else:

        def frac(v: float) -> float:
            return v / vmax

        ticks = [vmax * k / 5 for k in range(6)]
    if log:
        draw.text((width - right - 120, 22), "(log scale)", fill="black", font=font)
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black")
    for k, v in enumerate(ticks):  # y grid and labels
        y = height - bottom - plot_h * frac(v)
        draw.line([(left - 5, y), (width - right, y)], fill=(225, 225, 225) if k else "black")
        draw.text((8, y - 8), f"{v:g} s" if log else f"{v:.1f} s", fill="black", font=font)
    colors = {"sequential_s": (200, 80, 60), "batched_s": (50, 110, 190)}
    group_w = plot_w / max(1, len(rows))
    bar_w = min(80.0, group_w / 3)
    for i, row in enumerate(rows):
        x0 = left + group_w * i + (group_w - 2 * bar_w) / 2
        for j, key in enumerate(("sequential_s", "batched_s")):
            value = row.get(key)
            if not value:
                continue
            bx = x0 + j * bar_w
            by = height - bottom - plot_h * frac(value)
            draw.rectangle([bx, by, bx + bar_w - 4, height - bottom], fill=colors[key])
            draw.text((bx, by - 18), f"{value:.1f}", fill="black", font=font)
        label = f"N={row['documents']}"
        if row.get("saved_pct") is not None:
            label += f" ({row['saved_pct']:.0f}% saved)"
        draw.text((x0, height - bottom + 10), label, fill="black", font=font)
    ly = height - 40
    for j, (key, name) in enumerate((("sequential_s", "sequential (POST /ocr)"), ("batched_s", "batched (POST /batch_ocr)"))):
        lx = left + j * 300
        draw.rectangle([lx, ly, lx + 14, ly + 14], fill=colors[key])
        draw.text((lx + 20, ly - 1), name, fill="black", font=font)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
    return out
