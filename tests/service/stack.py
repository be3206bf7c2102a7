"""A throwaway OCR service for tests: its own redis-server and real Celery worker processes.

The workers run the ``detect`` and ``recognize`` command lines of the repository's
``Procfile`` (the ones users run), through ``/bin/sh`` with the stack's environment. The
shared Redis on 6379 is never touched: every ``OCR_*``, ``CELERY_*`` and ``FLOWER_*``
variable of the calling environment is dropped and ``OCR_REDIS_URL`` points at a fresh
redis-server on a free port.

>>> with Stack(models="noop", batch_size=50) as stack:     # doctest: +SKIP
...     client = stack.client()
...     doc_id = client.submit(png_bytes, "page.png")
...     stack.wait(doc_id)["state"]
'SUCCESS'

Pass ``web=True`` to also start the ``web`` line (gunicorn) on a free port: ``stack.web_url``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import redis

from ocr_tasks.client import OCRClient
from ocr_tasks.settings import Settings

__all__ = ["Stack", "ROOT", "free_port", "procfile_commands"]

ROOT = Path(__file__).resolve().parents[2]
_DROPPED_PREFIXES = ("OCR_", "CELERY_", "FLOWER_")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """``{process name: command line}`` of a Procfile."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


class Stack:
    """Start redis-server and the Celery workers; stop (and kill) all of them on exit.

    Args:
        env: extra environment variables for the workers (and :attr:`env`).
        detect_concurrency: prefork processes of the detect worker.
        batch_size: ``OCR_BATCH_SIZE``.
        batch_timeout: ``OCR_BATCH_TIMEOUT`` in seconds.
        models: ``OCR_MODELS``: "noop", "noop-failing" or "real" (then set ``OCR_MODEL_DIR``
            in ``env``).
        web: also start gunicorn (the Procfile's ``web`` line) on a free port.
        startup_timeout: seconds to wait for every process to be ready.
        persistent: run redis-server as docker-compose does (append-only file, fsync every
            second, ``noeviction``), so :meth:`restart_redis` keeps the queued work.
        broker_url: ``OCR_BROKER_URL`` (e.g. a RabbitMQ ``amqp://`` URL); default: the stack's Redis.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        detect_concurrency: int = 1,
        batch_size: int | str = 350,
        batch_timeout: float = 0.25,
        models: str = "noop",
        web: bool = False,
        startup_timeout: float = 90.0,
        persistent: bool = False,
        broker_url: str | None = None,
    ) -> None:
        self.port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.port}/0"
        self.env: dict[str, str] = {
            "OCR_REDIS_URL": self.redis_url,
            "OCR_MODELS": models,
            "OCR_BATCH_SIZE": str(batch_size),
            "OCR_BATCH_TIMEOUT": str(batch_timeout),
            "OCR_DETECT_CONCURRENCY": str(detect_concurrency),
            "OCR_TORCH_THREADS": "1",
            "OCR_DEVICE": "cpu",
            "OCR_LOG_LEVEL": "INFO",
            **({"OCR_BROKER_URL": broker_url} if broker_url else {}),
            **dict(env or {}),
        }
        self.persistent = persistent
        self.web = web
        self.web_url: str | None = None
        self.startup_timeout = startup_timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="ocr-stack-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    # --- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start redis-server, then the workers (and web), and wait until all are ready."""
        self._spawn("redis", self._redis_argv())
        self._wait_redis()
        commands = procfile_commands()
        for name in ("detect", "recognize"):
            self._spawn(name, ["/bin/sh", "-c", "exec " + commands[name]], self.process_env())
        if self.web:
            port = free_port()
            self.env["OCR_WEB_PORT"] = str(port)
            self.env.setdefault("OCR_WEB_WORKERS", "1")
            self.web_url = f"http://127.0.0.1:{port}"
            self._spawn("web", ["/bin/sh", "-c", "exec " + commands["web"]], self.process_env())
        deadline = time.monotonic() + self.startup_timeout
        for name in ("detect", "recognize"):
            self._wait_log(name, " ready.", deadline)
        if self.web:
            self._wait_http(deadline)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL to its whole process group)."""
        for name in [n for n in self.procs if n != "redis"] + (["redis"] if "redis" in self.procs else []):
            self._terminate(self.procs[name])
        self.procs.clear()
        for fh in self._logs.values():
            fh.close()
        self._logs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- failures ----------------------------------------------------------------------
    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> float:
        """Send ``sig`` to process ``name``'s whole process group and wait for it to exit.

        SIGKILL is a crash (the pool children die with the worker); SIGTERM is Celery's warm
        shutdown (running tasks finish, prefetched messages go back to the queue). Only this
        stack's own processes are signalled. Returns the seconds the process took to exit.
        """
        proc = self.procs.pop(name)
        t0 = time.monotonic()
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - t0
        self._terminate(proc, grace=0.0)  # stragglers of the group
        self._logs.pop(name).close()
        return took

    def respawn(self, name: str) -> None:
        """Start process ``name`` again (after :meth:`kill`) and wait until it is ready.

        The previous log is kept as ``<name>.<n>.log``; :meth:`logs` reads the new one.
        """
        n = 1
        while (self.tmp / f"{name}.{n}.log").exists():
            n += 1
        (self.tmp / f"{name}.log").rename(self.tmp / f"{name}.{n}.log")
        deadline = time.monotonic() + self.startup_timeout
        if name == "redis":
            self._spawn("redis", self._redis_argv())
            self._wait_redis()
            return
        command = procfile_commands()[name]
        self._spawn(name, ["/bin/sh", "-c", "exec " + command], self.process_env())
        self._wait_log(name, " ready.", deadline)

    def _redis_argv(self) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent else ["--appendonly", "no"]
        )
        return [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            *persistence, "--dir", str(self.tmp), "--maxmemory-policy", "noeviction",
        ]

    # --- access ----------------------------------------------------------------------
    def process_env(self) -> dict[str, str]:
        """The full environment the stack's processes run with."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
        if os.environ.get("OCR_CACHE_DIR"):  # the test run's throwaway export cache (tests/conftest.py)
            base["OCR_CACHE_DIR"] = os.environ["OCR_CACHE_DIR"]
        bindir = str(Path(sys.executable).parent)
        base["PATH"] = bindir + os.pathsep + base.get("PATH", "")
        base["PYTHONPATH"] = str(ROOT) + (os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else "")
        base["PYTHONUNBUFFERED"] = "1"
        return {**base, **self.env}

    @property
    def settings(self) -> Settings:
        """Settings matching the workers' environment."""
        return Settings.from_env(self.env)

    def client(self) -> OCRClient:
        """A client for this stack."""
        return OCRClient(self.settings)

    def redis(self) -> redis.Redis:
        """A redis client on the stack's server."""
        return redis.Redis.from_url(self.redis_url)

    def node(self, name: str) -> str:
        """The Celery node name of worker ``name`` ("detect" or "recognize"), from its ready line."""
        match = re.search(r"(\S+@\S+) ready\.", self.logs(name))
        if not match:
            raise LookupError(f"{name} has not logged its ready line")
        return match.group(1)

    def logs(self, name: str) -> str:
        """Everything process ``name`` (redis, detect, recognize, web) has written so far."""
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, doc_id: str, timeout: float = 60.0, client: OCRClient | None = None) -> dict[str, Any]:
        """Poll until the document is SUCCESS or FAILURE; returns its status."""
        client = client or self.client()
        deadline = time.monotonic() + timeout
        while True:
            status = client.status(doc_id)
            if status is not None and status["state"] in ("SUCCESS", "FAILURE"):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"document {doc_id} not done after {timeout} s: {status}\n{self.tail()}")
            self.check_alive()
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise if a process of the stack has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        """The last lines of every log, for error messages."""
        return "\n".join(
            f"--- {name}\n" + "\n".join(self.logs(name).splitlines()[-lines:]) for name in self.procs
        )

    # --- internals -------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env) if env is not None else None, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def _wait_redis(self) -> None:
        client = self.redis()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start\n{self.tail()}") from None
                self.check_alive()
                time.sleep(0.05)
            finally:
                client.close()

    def _wait_log(self, name: str, marker: str, deadline: float) -> None:
        while marker not in self.logs(name):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready after {self.startup_timeout} s\n{self.tail()}")
            time.sleep(0.1)

    def _wait_http(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"web not ready after {self.startup_timeout} s\n{self.tail()}") from None
                time.sleep(0.1)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # stragglers: pool children, a hung process
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
