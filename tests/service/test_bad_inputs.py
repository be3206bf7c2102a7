"""Bad inputs against the running HTTP API: every one is refused cleanly, odd-but-valid images are read.

The web app (Flask test client, the real ``OCRClient``) talks to the shared noop stack (its
own redis-server and real workers). Each refused request must get a 4xx with a JSON
``{"error": ...}`` naming the problem and must queue nothing; each accepted odd image must be
converted and read by the workers. After the whole table, a normal page still goes through.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.service.conftest import grid_page, png_bytes
from tests.service.stack import Stack
from web import create_app

MAX_BODY = 2 * 1024 * 1024
MAX_PIXELS = 4_000_000
MAX_FILES = 4


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def page(size: tuple[int, int] = (120, 80), mode: str = "RGB") -> Image.Image:
    """A small inked page (noop detector: one box per inked grid cell)."""
    rgb = np.random.default_rng(0).integers(0, 200, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(rgb).convert(mode)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def multipart(parts: list[tuple[str, bytes | None, bytes]], ctype: str = "application/octet-stream") -> dict[str, Any]:
    """A raw multipart body: ``(field, filename bytes or None for a text field, data)``."""
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"'.encode()
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n"
        if filename is not None:
            body += f"Content-Type: {ctype}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    return {"data": body + b"--XyZ--\r\n", "content_type": "multipart/form-data; boundary=XyZ"}


def upload(name: str, data: bytes) -> dict[str, Any]:
    return multipart([("file", name.encode(), data)])


def gif_animation() -> bytes:
    frames = [Image.new("RGB", (40, 30), color) for color in ("red", "green", "blue")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def tiff_pages() -> bytes:
    frames = [page((40, 30)), page((40, 30)).rotate(90)]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def sixteen_bit_png() -> bytes:
    gray = (np.arange(120 * 80, dtype=np.uint32).reshape(80, 120) * 7 % 65535).astype(np.uint16)
    return encode(Image.fromarray(gray), "PNG")


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    return encode(page(), "JPEG", exif=exif.tobytes())


GOOD_PNG = encode(page(), "PNG")
GOOD_JPEG = encode(page(), "JPEG")

#: (case, request, expected status, words the error must contain). A request is the keyword
#: arguments of ``FlaskClient.open`` (method and path default to POST /batch_ocr).
BAD: list[tuple[str, Callable[[], dict[str, Any]], int, tuple[str, ...]]] = [
    ("empty multipart body", lambda: multipart([]), 400, ("no file uploaded",)),
    ("zero-byte file", lambda: upload("page.png", b""), 400, ("empty (0 bytes)", "page.png")),
    ("truncated PNG", lambda: upload("cut.png", GOOD_PNG[: len(GOOD_PNG) // 2]), 400, ("cut.png", "truncated")),
    ("PNG header only", lambda: upload("head.png", GOOD_PNG[:40]), 400, ("head.png",)),
    ("truncated JPEG", lambda: upload("cut.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 3]), 400, ("cut.jpg", "truncated")),
    ("corrupt PNG data", lambda: upload("bad.png", GOOD_PNG[:60] + bytes(200) + GOOD_PNG[260:]), 400, ("bad.png",)),
    ("random bytes as .png", lambda: upload("noise.png", np.random.default_rng(1).bytes(4000)), 400,
     ("noise.png", "not a recognised image")),
    ("random bytes as .jpg", lambda: upload("noise.jpg", np.random.default_rng(2).bytes(4000)), 400,
     ("not a recognised image",)),
    ("text file", lambda: upload("notes.txt", b"hello world\n"), 400, ("'.txt' files are not supported",)),
    ("text content named .png", lambda: upload("notes.png", b"hello world\n" * 20), 400, ("not a recognised image",)),
    ("HTML", lambda: upload("page.png", b"<!DOCTYPE html><html><body>x</body></html>"), 400, ("HTML is not an image",)),
    ("SVG", lambda: upload("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'), 400, ("SVG",)),
    ("SVG file name", lambda: upload("logo.svg", b"<svg/>"), 400, ("'.svg' files are not supported",)),
    ("PDF", lambda: upload("scan.png", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"), 400, ("PDF documents are not supported",)),
    ("PDF file name", lambda: upload("scan.pdf", b"%PDF-1.4\n"), 400, ("'.pdf' files are not supported",)),
    ("ZIP / DOCX", lambda: upload("doc.png", b"PK\x03\x04" + bytes(100)), 400, ("ZIP",)),
    ("GIF animation", lambda: upload("anim.gif", gif_animation()), 400, ("multi-frame GIF", "3 frames")),
    ("multi-page TIFF", lambda: upload("pages.tif", tiff_pages()), 400, ("multi-frame TIFF",)),
    ("100000x1 image", lambda: upload("strip.png", encode(Image.new("L", (100_000, 1), 0), "PNG")), 413,
     ("strip.png", "longest side")),
    ("decompression bomb", lambda: upload("bomb.png", png_declaring(100_000, 100_000)), 413,
     ("bomb.png", "too many pixels")),
    ("over the pixel cap", lambda: upload("huge.png", encode(Image.new("L", (2100, 2000), 0), "PNG")), 413,
     ("huge.png", f"the limit is {MAX_PIXELS}")),
    ("request over MAX_CONTENT_LENGTH", lambda: upload("big.png", GOOD_PNG + bytes(MAX_BODY)), 413,
     (f"larger than the limit of {MAX_BODY} bytes",)),
    ("missing file field", lambda: multipart([("comment", None, b"hello")]), 400, ("no file uploaded",)),
    ("wrong field name", lambda: multipart([("image", b"page.png", GOOD_PNG)]), 400, ("field(s) 'image'",)),
    ("text in the file field", lambda: multipart([("file", None, b"page.png")]), 400, ("holds text, not a file",)),
    ("too many files", lambda: multipart([("file", f"p{i}.png".encode(), GOOD_PNG) for i in range(MAX_FILES + 1)]),
     400, ("too many files", f"at most {MAX_FILES}")),
    ("one bad file among good ones", lambda: multipart([("file", b"a.png", GOOD_PNG), ("file", b"b.png", b"junk")]),
     400, ("file 2 ('b.png')",)),
    ("non-UTF-8 file name", lambda: multipart([("file", b"scan\xe9\xff.png", GOOD_PNG)]), 400, ("UTF-8",)),
    ("path traversal file name", lambda: upload("../../etc/passwd.png", GOOD_PNG), 400, ("plain name",)),
    # On the wire a backslash inside the quoted filename must itself be escaped (RFC 7578 /
    # quoted-string); werkzeug >= 3.1.9 unescapes it, older versions keep both: either way the
    # server sees backslashes and refuses the name.
    ("Windows path file name", lambda: upload("C:\\\\Users\\\\me\\\\scan.png", GOOD_PNG), 400, ("plain name",)),
    ("NUL in the file name", lambda: multipart([("file", b"a\x00.png", GOOD_PNG)]), 400, ("plain name",)),
    ("wrong content type", lambda: {"data": GOOD_PNG, "content_type": "image/png"}, 400,
     ("multipart/form-data", "got image/png")),
    ("JSON body", lambda: {"data": b'{"file": "x"}', "content_type": "application/json"}, 400, ("multipart/form-data",)),
    ("missing content type", lambda: {"data": GOOD_PNG}, 400, ("multipart/form-data",)),
    ("multipart without a boundary", lambda: {"data": b"garbage", "content_type": "multipart/form-data"}, 400,
     ("no file uploaded",)),
    ("unknown parameter", lambda: {**upload("p.png", GOOD_PNG), "query_string": {"langauge": "en"}}, 400,
     ("unknown parameter(s) 'langauge'",)),
    ("unknown task id", lambda: {"method": "GET", "path": "/tasks/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"}, 404,
     ("no task with id",)),
    ("malformed task id", lambda: {"method": "GET", "path": "/tasks/not-a-task"}, 400, ("malformed task id",)),
    ("overlong task id", lambda: {"method": "GET", "path": "/tasks/" + "a" * 5000}, 400, ("malformed task id",)),
    ("wrong method", lambda: {"method": "GET", "path": "/batch_ocr"}, 405, ("method",)),
]

#: Odd but valid images: accepted (202), converted and read by the workers.
ODD: list[tuple[str, str, Callable[[], bytes]]] = [
    ("16-bit PNG", "deep.png", sixteen_bit_png),
    ("CMYK JPEG", "cmyk.jpg", lambda: encode(page(mode="CMYK"), "JPEG")),
    ("palette PNG", "palette.png", lambda: encode(page().convert("P"), "PNG")),
    ("palette PNG with transparency", "ptrans.png", lambda: encode(page().convert("P"), "PNG", transparency=0)),
    ("RGBA PNG", "alpha.png", lambda: encode(page(mode="RGBA"), "PNG")),
    ("gray + alpha PNG", "la.png", lambda: encode(page(mode="LA"), "PNG")),
    ("1-bit PNG", "bits.png", lambda: encode(page(mode="1"), "PNG")),
    ("1x1 image", "dot.png", lambda: encode(Image.new("RGB", (1, 1), "black"), "PNG")),
    ("EXIF-rotated JPEG", "rotated.jpg", exif_rotated_jpeg),
    ("single-frame GIF", "still.gif", lambda: encode(page(), "GIF")),
    ("BMP", "page.bmp", lambda: encode(page(), "BMP")),
    ("WebP", "page.webp", lambda: encode(page(), "WEBP")),
    ("TIFF", "page.tif", lambda: encode(page(), "TIFF")),
    ("PGM", "page.pgm", lambda: encode(page(mode="L"), "PPM")),
    ("no extension", "scan", lambda: GOOD_PNG),
    ("part content type says text", "typed.png", lambda: GOOD_PNG),
]


@pytest.fixture(scope="module")
def http(noop_stack: Stack) -> FlaskClient:
    settings = replace(noop_stack.settings, max_pixels=MAX_PIXELS)
    app = create_app({"TESTING": True, "OCR_SETTINGS": settings, "MAX_CONTENT_LENGTH": MAX_BODY,
                      "MAX_FILES": MAX_FILES, "METRICS": False})
    return app.test_client()


@pytest.mark.parametrize(("case", "make", "status", "words"), BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_refused_with_a_json_message(
    http: FlaskClient, noop_stack: Stack, case: str, make: Callable[[], dict[str, Any]], status: int,
    words: tuple[str, ...],
) -> None:
    """4xx, JSON ``{"error": ...}`` naming the problem, nothing queued."""
    request = {"method": "POST", "path": "/batch_ocr", **make()}
    queued_before = noop_stack.redis().llen(noop_stack.settings.detect_queue)
    docs_before = len(noop_stack.redis().keys("ocr:doc:*"))
    response = http.open(**request)
    assert response.status_code == status, (case, response.status_code, response.data[:300])
    assert response.mimetype == "application/json", case
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    for word in words:
        assert word in body["error"], (case, body["error"])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert noop_stack.redis().llen(noop_stack.settings.detect_queue) == queued_before
    assert len(noop_stack.redis().keys("ocr:doc:*")) == docs_before, f"{case}: something was queued"


def test_odd_but_valid_images_are_converted_and_read(http: FlaskClient, noop_stack: Stack) -> None:
    """Every odd image is accepted in one request and every one comes back SUCCESS."""
    parts = []
    for _case, name, make in ODD:
        parts.append(("file", name.encode(), make()))
    ids: list[tuple[str, str]] = []
    for start in range(0, len(parts), MAX_FILES):
        chunk = parts[start : start + MAX_FILES]
        body = multipart(chunk, ctype="text/plain" if any(n == b"typed.png" for _, n, _ in chunk) else "image/png")
        response = http.post("/batch_ocr", **body)
        assert response.status_code == 202, response.get_json()
        ids += [(t["filename"], t["id"]) for t in response.get_json()["tasks"]]
    assert [name for name, _ in ids] == [name for _, name, _ in ODD]
    client = noop_stack.client()
    for name, doc_id in ids:
        status = noop_stack.wait(doc_id, timeout=60, client=client)
        assert status["state"] == "SUCCESS", (name, status["error"])
        polled = http.get(f"/tasks/{doc_id}").get_json()
        assert polled["state"] == "SUCCESS" and polled["result"]["width"] >= 1, name
        if name != "dot.png":
            assert polled["result"]["words"], name
    rotated = dict(ids)["rotated.jpg"]
    assert (client.status(rotated)["result"]["width"], client.status(rotated)["result"]["height"]) == (80, 120)


def test_service_still_serves_after_the_table(http: FlaskClient, noop_stack: Stack) -> None:
    """After every bad request above, a normal page goes through the workers correctly."""
    response = http.post("/batch_ocr", **upload("normal.png", png_bytes(grid_page())))
    assert response.status_code == 202
    (task,) = response.get_json()["tasks"]
    assert uuid.UUID(task["id"]).version == 4  # unguessable ids
    status = noop_stack.wait(task["id"])
    assert status["state"] == "SUCCESS"
    assert [w["text"] for w in status["result"]["words"]] == [f"w{10 + i}" for i in range(200)]
    assert http.get("/healthz").status_code == 200


def test_at_least_thirty_kinds() -> None:
    assert len(BAD) + len(ODD) >= 30 and len(BAD) >= 30
