"""A small stdlib HTTP client for the load test, and the loopback guard.

Only :mod:`urllib` is used: the bench needs no extra package. Every call has a timeout.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

#: Never through a proxy from the environment: the load goes straight to the URL given.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

__all__ = ["RemoteRefused", "is_loopback", "check_url", "multipart", "post_files", "get_json", "get_text"]


class RemoteRefused(ValueError):
    """The URL points outside this machine and ``--allow-remote`` was not given."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address, ``localhost``, or a name that resolves only to loopback."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_url(url: str, allow_remote: bool = False) -> str:
    """The base URL without a trailing slash; refuses non-HTTP and (unless allowed) non-loopback URLs.

    Raises:
        ValueError: not an ``http(s)://host[:port]`` URL.
        RemoteRefused: the host is not loopback and ``allow_remote`` is false.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s)://host:port URL, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise RemoteRefused(
            f"{parts.hostname} is not a loopback address: the bench only loads this machine "
            "unless --allow-remote is given"
        )
    return url.rstrip("/")


def multipart(files: Sequence[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    """``multipart/form-data`` body with each ``(file name, bytes)`` in ``field``; returns body, content type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, data in files:
        safe = name.replace('"', "").replace("\r", "").replace("\n", "")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        parts.append(data)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _json_response(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, {"error": raw[:200].decode(errors="replace")}


def post_files(url: str, files: Sequence[tuple[str, bytes]], timeout: float = 60.0) -> tuple[int, Any]:
    """POST ``files`` as multipart to ``url``; returns (status, parsed JSON)."""
    body, content_type = multipart(files)
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    return _json_response(request, timeout)


def get_json(url: str, timeout: float = 30.0) -> tuple[int, Any]:
    """GET ``url``; returns (status, parsed JSON)."""
    return _json_response(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout)


def get_text(url: str, timeout: float = 10.0) -> str:
    """GET ``url`` as text (raises on HTTP errors)."""
    with _OPENER.open(url, timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")
