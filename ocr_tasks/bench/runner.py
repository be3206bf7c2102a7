"""The two ways of sending N documents: sequential (``POST /ocr``) and batched (``POST /batch_ocr``).

Both are bounded: at most ``n`` documents and ``timeout`` seconds of wall time; whatever is not
finished by then is reported as timed out (the run still returns what it measured).

Batched mode: ``clients`` threads share the documents. Each client uploads its documents
(``files_per_request`` pages per ``POST /batch_ocr``) as fast as the server takes them, then
polls its own documents in submission order: it asks for the oldest one still pending and, when
that one is done, at once for the next; when it is not done, it waits ``poll_interval`` first.
Documents finish roughly in submission order, so this costs about one status request per
document plus one per client and interval, which keeps the polling from eating the CPU the
workers need. The run's time is from the first upload to the last document seen done.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .http import get_json, post_files

__all__ = ["DocRecord", "RunResult", "run_sequential", "run_batched"]

Progress = Callable[[int], None]


@dataclass
class DocRecord:
    """One document of a run.

    Attributes:
        index: position in the run.
        id: task id (batched mode).
        ok: finished with a document.
        error: why not.
        client_seconds: upload to the document being seen done, on the client's clock.
        timings: the document's server-side ``timings``.
        batches: the document's ``batches`` (batched mode).
        words: words in the document.
        boxes: boxes detection found (``progress.total``; ``words`` in sequential mode).
    """

    index: int
    id: str = ""
    ok: bool = False
    error: str = ""
    client_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    words: int = 0
    boxes: int = 0


@dataclass
class RunResult:
    """A finished (or timed-out) run."""

    mode: str
    docs: int
    seconds: float
    records: list[DocRecord]
    timed_out: bool = False
    clients: int = 1
    requests: dict[str, int] = field(default_factory=dict)


def _fill(record: DocRecord, document: dict[str, Any]) -> None:
    record.ok = True
    record.timings = {k: float(v) for k, v in (document.get("timings") or {}).items() if isinstance(v, (int, float))}
    record.batches = list(document.get("batches") or [])
    record.words = len(document.get("words") or [])


def run_sequential(
    base_url: str,
    pages: Sequence[tuple[str, bytes]],
    n: int,
    timeout: float = 600.0,
    request_timeout: float = 300.0,
    progress: Progress | None = None,
) -> RunResult:
    """``POST /ocr`` ``n`` times, one after another (pages cycled)."""
    records: list[DocRecord] = []
    start = time.monotonic()
    deadline = start + timeout
    timed_out = False
    for i in range(n):
        if time.monotonic() > deadline:
            timed_out = True
            records.extend(DocRecord(j, error="timed out before it was sent") for j in range(i, n))
            break
        name, data = pages[i % len(pages)]
        record = DocRecord(i)
        t0 = time.monotonic()
        try:
            status, body = post_files(f"{base_url}/ocr", [(name, data)], timeout=max(1.0, min(request_timeout, deadline - t0)))
        except OSError as exc:
            status, body = 0, {"error": f"{type(exc).__name__}: {exc}"}
        record.client_seconds = time.monotonic() - t0
        if status == 200 and isinstance(body, dict):
            _fill(record, body)
            record.boxes = record.words
        else:
            record.error = f"HTTP {status}: {(body or {}).get('error', body) if isinstance(body, dict) else body}"
        records.append(record)
        if progress:
            progress(1)
    return RunResult("sequential", n, time.monotonic() - start, records, timed_out, 1, {"ocr": len(records)})


class _Batched:
    def __init__(
        self, base_url: str, pages: Sequence[tuple[str, bytes]], n: int, clients: int, timeout: float,
        poll_interval: float, files_per_request: int, request_timeout: float, progress: Progress | None,
    ) -> None:
        self.base = base_url
        self.pages = pages
        self.n = n
        self.clients = max(1, clients)
        self.deadline = time.monotonic() + timeout
        self.poll_interval = poll_interval
        self.per_request = max(1, files_per_request)
        self.request_timeout = request_timeout
        self.progress = progress
        self.records = [DocRecord(i) for i in range(n)]
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.counts = {"batch_ocr": 0, "tasks": 0, "retries": 0}
        self.timed_out = False

    def _take(self) -> list[int]:
        with self._lock:
            taken = []
            for _ in range(self.per_request):
                i = next(self._next)
                if i >= self.n:
                    break
                taken.append(i)
            return taken

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _submit(self, indices: list[int], pending: deque[tuple[int, float]]) -> None:
        files = [self.pages[i % len(self.pages)] for i in indices]
        t0 = time.monotonic()
        while True:
            try:
                status, body = post_files(f"{self.base}/batch_ocr", files, timeout=self.request_timeout)
            except OSError as exc:
                status, body = 0, {"error": f"{type(exc).__name__}: {exc}"}
            self._count("batch_ocr")
            # 503 without tasks: the service is busy (OCR_MAX_BACKLOG) or the broker blinked;
            # back off briefly and send again, as a well-behaved client would
            queued = isinstance(body, dict) and body.get("tasks")
            if status != 503 or queued or time.monotonic() + 0.5 > self.deadline:
                break
            self._count("retries")
            time.sleep(0.5)
        tasks = (body or {}).get("tasks") or [] if isinstance(body, dict) else []
        for j, i in enumerate(indices):
            if j < len(tasks):
                self.records[i].id = str(tasks[j]["id"])
                pending.append((i, t0))
            else:
                error = body.get("error", body) if isinstance(body, dict) else body
                self.records[i].error = f"HTTP {status}: {error}"
                if self.progress:
                    self.progress(1)

    def _poll(self, pending: deque[tuple[int, float]]) -> None:
        while pending:
            if time.monotonic() > self.deadline:
                self.timed_out = True
                for i, _ in pending:
                    self.records[i].error = self.records[i].error or "timed out"
                return
            i, t0 = pending[0]
            record = self.records[i]
            try:
                status, body = get_json(f"{self.base}/tasks/{record.id}", timeout=self.request_timeout)
            except OSError:
                status, body = 0, None
            self._count("tasks")
            state = body.get("state") if status == 200 and isinstance(body, dict) else None
            if state in ("SUCCESS", "FAILURE"):
                pending.popleft()
                record.client_seconds = time.monotonic() - t0
                if state == "SUCCESS" and isinstance(body.get("result"), dict):
                    _fill(record, body["result"])
                    record.boxes = int((body.get("progress") or {}).get("total", record.words))
                else:
                    record.error = str(body.get("error") or "FAILURE")
                if self.progress:
                    self.progress(1)
                continue
            time.sleep(self.poll_interval)

    def client(self) -> None:
        pending: deque[tuple[int, float]] = deque()
        while time.monotonic() < self.deadline:
            indices = self._take()
            if not indices:
                break
            self._submit(indices, pending)
        self._poll(pending)

    def run(self) -> RunResult:
        start = time.monotonic()
        threads = [threading.Thread(target=self.client, name=f"bench-client-{k}", daemon=True) for k in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, self.deadline - time.monotonic()) + self.request_timeout + 1)
        seconds = time.monotonic() - start
        for record in self.records:
            if not record.ok and not record.error:
                record.error = "timed out before it was sent" if not record.id else "timed out"
                self.timed_out = True
        return RunResult("batched", self.n, seconds, self.records, self.timed_out, self.clients, dict(self.counts))


def run_batched(
    base_url: str,
    pages: Sequence[tuple[str, bytes]],
    n: int,
    clients: int = 4,
    timeout: float = 600.0,
    poll_interval: float = 0.1,
    files_per_request: int = 1,
    request_timeout: float = 60.0,
    progress: Progress | None = None,
) -> RunResult:
    """Queue ``n`` documents through ``POST /batch_ocr`` from ``clients`` threads and wait for all."""
    return _Batched(
        base_url, pages, n, clients, timeout, poll_interval, files_per_request, request_timeout, progress
    ).run()
