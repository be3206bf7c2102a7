"""The bench client, its statistics and chart, payload compression, auto batch size, metrics plumbing.

No broker and no workers here (``test_bench_stack.py`` runs against a throwaway stack).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ocr_tasks.autobatch import choose_batch_size, synthetic_crops
from ocr_tasks.bench import cli as bench_cli
from ocr_tasks.bench.http import RemoteRefused, check_url, is_loopback, multipart
from ocr_tasks.bench.pages import PAGE_SIZE, word_grid_page
from ocr_tasks.bench.report import batch_stats, format_table, percentile, summarize, table_rows, write_chart
from ocr_tasks.bench.runner import DocRecord, RunResult
from ocr_tasks.cli import build_parser, main
from ocr_tasks.crops import decode_crop, encode_crop
from ocr_tasks.imaging import decode_image
from ocr_tasks.monitoring import metrics_port
from ocr_tasks.noop import GridDetector
from ocr_tasks.settings import Settings
from tests.service.stack import ROOT, free_port


# --- loopback guard and HTTP ---------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1/", "http://[::1]:80", "https://127.8.9.10"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://192.168.1.5", "http://8.8.8.8:80"])
def test_remote_urls_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(RemoteRefused):
        check_url(url)
    assert check_url(url, allow_remote=True) == url


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8000", "http://"])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url, allow_remote=True)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.1.2.3") and not is_loopback("no-such-host.invalid")


def test_bench_command_refuses_a_remote_url(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI exits 2 naming the problem, without sending anything."""
    assert main(["bench", "--url", "http://10.9.8.7:8000", "--docs", "1", "--no-progress"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_bench_command_is_registered_with_bounds() -> None:
    parser = build_parser()
    args = parser.parse_args(["bench", "--docs", "10,100", "--mode", "batched", "--clients", "3"])
    assert args.docs == [10, 100] and args.mode == "batched" and args.clients == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--docs", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--docs", str(bench_cli.MAX_DOCS + 1)])
    assert bench_cli.COMMANDS == [bench_cli.add_bench]


@pytest.mark.parametrize("flags", [["--memory-interval", "0"], ["--memory-interval", "-1"], ["--clients", "0"]])
def test_bench_command_names_a_bad_bound(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--docs", "1", *flags]) == 2
    assert flags[0] in capsys.readouterr().err


def test_multipart_body_is_parsed_by_werkzeug() -> None:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    body, ctype = multipart([("a.png", b"\x89PNG..."), ('b"c.png', b"\x00\x01")])
    env = EnvironBuilder(method="POST", data=body, content_type=ctype).get_environ()
    files = Request(env).files.getlist("file")
    assert [f.filename for f in files] == ["a.png", "bc.png"]
    assert [f.read() for f in files] == [b"\x89PNG...", b"\x00\x01"]


def test_bench_client_imports_neither_torch_nor_celery() -> None:
    code = (
        "import sys, ocr_tasks.bench.cli, ocr_tasks.bench.runner, ocr_tasks.bench.report, ocr_tasks.bench.pages;"
        "print('torch' in sys.modules, 'celery' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- pages ---------------------------------------------------------------------------
@pytest.mark.parametrize("boxes", [200, 57, 0])
def test_generated_pages_give_the_noop_detector_one_box_per_word(boxes: int) -> None:
    image = decode_image(word_grid_page(boxes, seed=3))
    assert image.shape[:2] == (PAGE_SIZE[1], PAGE_SIZE[0])
    assert len(GridDetector().detect(image)) == boxes


# --- statistics, table, chart --------------------------------------------------------
def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == 95


def test_batch_stats_count_shared_flushes_once() -> None:
    """Two documents in one 350 flush and one alone: 2 batches, not 3."""
    docs = [
        [{"id": "a", "size": 350, "crops": 200, "cause": "size", "seconds": 0.1}],
        [{"id": "a", "size": 350, "crops": 150, "cause": "size", "seconds": 0.1},
         {"id": "b", "size": 50, "crops": 50, "cause": "timeout", "seconds": 0.02}],
    ]
    stats = batch_stats(docs)
    assert stats["count"] == 2 and stats["causes"] == {"size": 1, "timeout": 1}
    assert stats["mean"] == 200.0 and stats["max"] == 350
    assert stats["histogram"] == {"26-50": 1, "301-350": 1}
    # without ids: each entry weighs crops/size of a batch
    anonymous = [[{k: v for k, v in b.items() if k != "id"} for b in d] for d in docs]
    assert batch_stats(anonymous)["count"] == 2


def _result(mode: str, seconds: float, n: int = 4) -> RunResult:
    records = [
        DocRecord(i, id=str(i), ok=True, client_seconds=1.0 + i, words=200, boxes=200,
                  timings={"detect": 0.1, "recognize": 0.2, "total": 0.5 + i},
                  batches=[{"id": f"b{i // 2}", "size": 350, "crops": 200, "cause": "size", "seconds": 0.1}])
        for i in range(n)
    ]
    records.append(DocRecord(n, error="HTTP 503: busy"))
    return RunResult(mode, n + 1, seconds, records, clients=2)


def test_summarize_and_table() -> None:
    seq, bat = summarize(_result("sequential", 10.0)), summarize(_result("batched", 4.0))
    assert seq["ok"] == 4 and seq["failed"] == 1 and seq["errors"] == {"HTTP 503: busy": 1}
    assert bat["docs_per_s"] == 1.0 and bat["crops"] == 800 and bat["crops_per_s"] == 200.0
    assert bat["latency"]["p50"] == 2.0 and bat["latency"]["max"] == 3.5
    assert bat["stages"]["detect"]["mean"] == 0.1
    assert bat["batch_sizes"]["count"] == 2 and "batch_sizes" not in seq
    rows = table_rows({5: {"sequential": seq, "batched": bat}})
    assert rows == [{"documents": 5, "sequential_s": 10.0, "batched_s": 4.0, "saved_s": 6.0, "saved_pct": 60.0}]
    table = format_table(rows)
    assert "| Documents | Sequential (s) | Batched (s) | Saved (s) | Saved (%) |" in table
    assert "| 5 | 10.00 | 4.00 | 6.00 | 60.0 |" in table
    json.dumps({"sequential": seq, "batched": bat})  # JSON-ready


def test_chart_is_a_png(tmp_path) -> None:
    rows = [
        {"documents": 10, "sequential_s": 33.9, "batched_s": 20.1, "saved_s": 13.8, "saved_pct": 40.7},
        {"documents": 100, "sequential_s": 339.6, "batched_s": 252.0, "saved_s": 87.6, "saved_pct": 25.8},
    ]
    path = write_chart(rows, tmp_path / "chart.png")
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG" and image.size == (900, 520)
    assert len(np.unique(np.asarray(image.convert("L")))) > 3  # bars, not a blank canvas


# --- crop payloads -------------------------------------------------------------------
def test_word_crops_are_compressed_losslessly() -> None:
    crop = np.full((40, 120), 240, np.uint8)
    crop[10:30, 10:100:7] = 20
    payload = encode_crop(crop)
    assert payload["z"] == 1 and len(payload["data"]) < crop.size // 5
    np.testing.assert_array_equal(decode_crop(payload), crop)
    assert "z" not in encode_crop(crop, compress=False)


@pytest.mark.parametrize(
    "data",
    [zlib.compress(b"\x00" * 99), zlib.compress(b"\x00" * 101), b"not zlib at all", zlib.compress(b"\x00" * 100)[:-3]],
)
def test_compressed_crops_must_inflate_to_exactly_their_shape(data: bytes) -> None:
    """Short, long (a bomb is cut at the expected size), corrupt or truncated data is refused."""
    with pytest.raises(ValueError):
        decode_crop({"shape": [10, 10], "data": data, "z": 1})


# --- OCR_BATCH_SIZE=auto -------------------------------------------------------------
class _FakeRecognizer:
    """predict() costs ``fixed + per_crop * n`` seconds, but nothing below ``floor`` per crop."""

    def __init__(self, fixed: float, per_crop: float) -> None:
        self.fixed, self.per_crop = fixed, per_crop

    def predict(self, crops):  # noqa: ANN001, ANN201
        time.sleep(self.fixed + self.per_crop * len(crops))
        return [("x", 1.0)] * len(crops)


def test_auto_batch_size_stops_growing_once_throughput_is_flat() -> None:
    """Throughput n / (0.005 + 0.0002 n) saturates near 5000/s: the choice is where it comes within 10%."""
    choice = choose_batch_size(_FakeRecognizer(0.005, 0.0002), candidates=(32, 64, 128, 256, 512, 1024), minimum=1)
    assert choice.size in (128, 256, 512) and choice.measurements
    assert all(m["crops_per_s"] > 0 for m in choice.measurements)


def test_auto_batch_size_respects_the_call_time_limit() -> None:
    choice = choose_batch_size(_FakeRecognizer(0.0, 0.001), candidates=(32, 64, 128), max_call_seconds=0.05, minimum=1)
    assert "took" in choice.reason and choice.measurements[-1]["size"] == 64


def test_synthetic_crops_look_like_words() -> None:
    crops = synthetic_crops(5)
    assert all(c.dtype == np.uint8 and c.shape[0] == 32 and 60 <= c.shape[1] <= 180 for c in crops)
    assert all(c.min() < 100 < c.max() for c in crops)


# --- metrics plumbing ----------------------------------------------------------------
def test_metrics_port_per_worker() -> None:
    assert metrics_port("detect", {}) is None
    assert metrics_port("detect", {"OCR_METRICS_PORT": "9100"}) == 9100
    env = {"OCR_METRICS_PORT": "9100", "OCR_RECOGNIZE_METRICS_PORT": "9102"}
    assert metrics_port("recognize", env) == 9102 and metrics_port("detect", env) == 9100
    with pytest.raises(ValueError):
        metrics_port("detect", {"OCR_METRICS_PORT": "http"})


def test_web_metrics_endpoint_counts_requests_without_redis() -> None:
    """/metrics answers even when Redis is down (ocr_redis_up 0); request counters by URL rule."""
    from web import create_app

    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: never the shared Redis
    fake = SimpleNamespace(submit=lambda data, name: "x", status=lambda task_id: None, ping=lambda: None)
    app = create_app({"TESTING": True, "OCR_CLIENT": fake, "OCR_SETTINGS": Settings(redis_url=closed, models="noop")})
    client = app.test_client()
    assert client.get("/tasks/0b5e2c1e-6a53-4c8e-9d1a-1d7f3a0c9b11").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'ocr_web_requests_total{endpoint="/tasks/<task_id>",method="GET",status="404"}' in text
    assert "ocr_web_request_seconds_bucket" in text and "ocr_redis_up 0.0" in text
    off = create_app({"TESTING": True, "OCR_CLIENT": fake, "METRICS": False,
                      "OCR_SETTINGS": Settings(redis_url=closed, models="noop")})
    assert off.test_client().get("/metrics").status_code == 404


def test_batched_publishing_hands_out_one_producer() -> None:
    """Inside the block every send goes through the same (batching) producer; outside, the pool's."""
    from ocr_tasks.celery_app import create_celery

    app = create_celery(Settings(broker_url="memory://", redis_url=f"redis://127.0.0.1:{free_port()}/0", models="noop"))
    with app.batched_publishing() as producer:
        with app.producer_or_acquire() as p1, app.producer_or_acquire() as p2:
            assert p1 is producer and p2 is producer
        other = create_celery(Settings(broker_url="memory://", models="noop"), tasks=False)
        with other.producer_or_acquire() as p3:
            assert p3 is not producer  # another app never gets this app's producer
    with app.producer_or_acquire() as p4:
        assert p4 is not None


def test_acknowledge_all_falls_back_per_request() -> None:
    """Requests that are not kombu Redis deliveries are acknowledged one by one, each once."""
    from ocr_tasks.acks import acknowledge_all

    acked = []

    class Req(SimpleNamespace):
        def acknowledge(self) -> None:
            acked.append(self.id)
            self.acknowledged = True

    reqs = [Req(id=i, acknowledged=False, message=SimpleNamespace(channel=None, acknowledged=False)) for i in range(3)]
    reqs.append(Req(id=9, acknowledged=True, message=None))
    acknowledge_all(reqs)
    assert acked == [0, 1, 2] and all(r.acknowledged for r in reqs)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_memory_of_a_process_tree_counts_its_children() -> None:
    from ocr_tasks.bench.memory import rss_mb, tree_memory_mb, tree_pids

    before = tree_memory_mb(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; b = b'x' * (160 << 20); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        assert child.pid in tree_pids(os.getpid())
        grown = tree_memory_mb(os.getpid())
        assert grown - before >= 140, (before, grown)
        assert tree_memory_mb(child.pid) >= 150
        assert rss_mb(child.pid) >= 160  # one process, resident set (its 160 MiB bytes object)
    finally:
        child.kill()
        child.wait()
    time.sleep(0.1)
    assert child.pid not in tree_pids(os.getpid())
    assert rss_mb(child.pid) == 0


def test_memory_summary_compares_the_last_tenth_with_the_second() -> None:
    from ocr_tasks.bench.memory import summarize

    # 100 samples: 50 MiB while loading (first tenth), then 100 MiB, then 115 MiB in the last tenth
    samples = [{"t": float(i), "w": 50.0 if i < 10 else 115.0 if i >= 90 else 100.0} for i in range(100)]
    got = summarize(samples, max_points=10)["processes"]["w"]
    assert got["second_tenth_mb"] == 100.0 and got["last_tenth_mb"] == 115.0
    assert got["growth_pct"] == 15.0 and got["max_mb"] == 115.0 and got["start_mb"] == 50.0
    assert len(summarize(samples, max_points=10)["series"]) == 10
    assert summarize([]) == {}


def test_memory_sampler_reports_its_own_cpu_time() -> None:
    from ocr_tasks.bench.memory import MemorySampler

    with MemorySampler({"me": os.getpid()}, interval=0.05) as sampler:
        time.sleep(0.4)
    got = sampler.summary()
    assert got["samples"] == len(sampler.samples) >= 5
    assert got["interval_s"] == 0.05 and got["processes"]["me"]["max_mb"] > 10
    # each sample reads /proc: some CPU, far less than the wall time it covered
    assert 0 < got["sampler_cpu_s"] < got["seconds"]
    assert got["sampler_cpu_pct"] == round(100 * sampler.cpu_seconds / got["seconds"], 2)
    from ocr_tasks.bench.report import format_details

    text = format_details(4, {**summarize(_result("batched", 4.0)), "memory": got})
    assert f"{got['samples']} samples every 0.05 s; sampler CPU" in text and "% of one core]" in text
