"""Flower as the Procfile starts it: basic auth from FLOWER_BASIC_AUTH, its API closed without it."""

from __future__ import annotations

import base64
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.service.stack import ROOT, Stack, free_port, procfile_commands

pytestmark = pytest.mark.slow


@contextmanager
def flower(stack: Stack, env: dict[str, str]) -> Iterator[str]:
    """The Procfile's ``flower`` line on a free port, with ``env`` added; yields its URL."""
    port = free_port()
    full = {**stack.process_env(), "OCR_FLOWER_PORT": str(port), **env}
    log = open(stack.tmp / f"flower-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["/bin/sh", "-c", "exec " + procfile_commands()["flower"]], cwd=ROOT, env=full,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (stack.tmp / f"flower-{port}.log").read_text()[-2000:]
            if status(url + "/healthcheck") == 200:
                break
            assert time.monotonic() < deadline, "flower did not start"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback only)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_flower_auth_comes_from_the_environment(noop_stack: Stack) -> None:
    """FLOWER_BASIC_AUTH protects the dashboard and the API; wrong or missing credentials get 401."""
    with flower(noop_stack, {"FLOWER_BASIC_AUTH": "ops:s3cret-from-env"}) as url:
        assert status(url + "/api/workers") == 401
        assert status(url + "/", auth=None) == 401
        assert status(url + "/api/workers", auth="ops:wrong") == 401
        assert status(url + "/api/workers", auth="ops:s3cret-from-env") == 200


def test_flower_api_is_closed_without_auth(noop_stack: Stack) -> None:
    """Without FLOWER_BASIC_AUTH Flower binds to 127.0.0.1 and refuses every API call."""
    with flower(noop_stack, {}) as url:
        assert url.startswith("http://127.0.0.1:")
        assert status(url + "/api/workers") == 401
        assert status(url + "/api/tasks") == 401
