"""``ocr-pipeline bench``: load-test a running OCR service through its HTTP API.

- :mod:`.pages`: pages to send (a folder of real pages, or rendered word grids with a chosen
  number of words, aligned with the ``OCR_MODELS=noop`` detector's grid).
- :mod:`.http`: a tiny stdlib HTTP client (multipart upload, JSON) and the loopback guard.
- :mod:`.runner`: the sequential (``POST /ocr`` one after another) and batched
  (``POST /batch_ocr`` from K concurrent clients, polling ``GET /tasks/<id>``) runs.
- :mod:`.report`: statistics (throughput, latency percentiles, batch sizes, flush causes,
  per-stage time), the sequential-vs-batched table, JSON and a PNG chart drawn with Pillow.
- :mod:`.cli`: the ``bench`` subcommand (registered through ``COMMANDS``).

Nothing here imports torch, Celery or Flask: the bench is a plain HTTP client.
"""

from __future__ import annotations

__all__: list[str] = []
