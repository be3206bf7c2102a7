"""The bench and the metrics endpoints against a throwaway stack (own redis-server, real workers,
gunicorn), never the shared Redis. A few documents only: seconds, not minutes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_tasks.bench.http import get_text
from ocr_tasks.cli import main
from tests.service.stack import Stack, free_port


@pytest.fixture(scope="module")
def metered_stack() -> Iterator[Stack]:
    """noop models, metrics on for both workers, web app on a free port."""
    env = {"OCR_DETECT_METRICS_PORT": str(free_port()), "OCR_RECOGNIZE_METRICS_PORT": str(free_port())}
    with Stack(models="noop", batch_size=300, batch_timeout=0.2, web=True, env=env) as stack:
        yield stack


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in metrics:\n{text[:2000]}"
    return float(match.group(1))


def test_bench_runs_both_modes_and_writes_json_and_chart(metered_stack: Stack, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--url", str(metered_stack.web_url), "--docs", "3", "--mode", "both", "--clients", "2",
        "--boxes", "120", "--variants", "2", "--timeout", "120", "--json", str(out), "--no-progress",
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "| Documents | Sequential (s) | Batched (s) | Saved (s) | Saved (%) |" in printed
    report = json.loads(out.read_text())
    seq, bat = report["sequential"], report["batched"]
    assert seq["ok"] == 3 and seq["seconds"] > 0 and seq["docs_per_s"] > 0
    assert bat["ok"] == 3 and bat["crops"] == 360 and bat["crops_per_s"] > 0
    assert bat["batch_sizes"]["count"] >= 1 and sum(bat["batch_sizes"]["causes"].values()) == bat["batch_sizes"]["count"]
    assert set(bat["stages"]) >= {"queue_wait", "detect", "recognize", "aggregate", "total"}
    assert report["table"][0]["documents"] == 3 and "saved_pct" in report["table"][0]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_endpoints_are_scrapeable_after_a_document(metered_stack: Stack, page_png: bytes) -> None:
    """Web /metrics and both workers' endpoints answer; the batch histogram counts the flushes."""
    client = metered_stack.client()
    status = metered_stack.wait(client.submit(page_png, "grid.png"))
    assert status["state"] == "SUCCESS"
    recognize = get_text(f"http://127.0.0.1:{metered_stack.env['OCR_RECOGNIZE_METRICS_PORT']}/metrics")
    assert _value(recognize, "ocr_recognize_batch_size_count") >= 1
    assert _value(recognize, "ocr_recognize_crops_total") >= 200
    assert re.search(r'^ocr_recognize_batch_flushes_total\{cause="(size|timeout)"\} [1-9]', recognize, re.M)
    assert 'ocr_recognize_batch_size_bucket{le="350.0"}' in recognize
    detect = get_text(f"http://127.0.0.1:{metered_stack.env['OCR_DETECT_METRICS_PORT']}/metrics")
    assert _value(detect, 'ocr_stage_seconds_count{stage="total"}') >= 1  # summed over the pool's processes
    assert _value(detect, 'ocr_documents_total{outcome="success"}') >= 1
    assert _value(detect, 'ocr_queue_depth{queue="recognize"}') >= 0 and _value(detect, "ocr_redis_up") == 1
    web = get_text(f"{metered_stack.web_url}/metrics")
    assert _value(web, "ocr_redis_up") == 1 and _value(web, "ocr_documents_in_flight") == 0  # all assembled
    assert 'ocr_queue_depth{queue="detect"}' in web and "ocr_web_request_seconds_bucket" in web


@pytest.fixture(scope="module")
def page_png() -> bytes:
    from tests.service.conftest import grid_page, png_bytes

    return png_bytes(grid_page())
