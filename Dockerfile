# One image for every service process (web, detect worker, recognize worker, Flower).
# TORCH_INDEX_URL picks the torch build: the default PyPI wheel runs on CUDA GPUs and on CPU;
# pass --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a small CPU-only image.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

COPY setup.cfg pyproject.toml README.md ./
COPY ocr_tasks ./ocr_tasks
COPY web ./web
COPY workers ./workers
COPY Procfile ./
RUN pip install ".[service]"

RUN useradd --create-home --uid 10001 ocr
USER ocr
# the CPU processes (web, detect) run the networks on ONNX Runtime: export them into the image's
# cache (~/.cache/ocr-pipeline) once here instead of in every container at its start
RUN OCR_DEVICE=cpu ocr-pipeline models --load
EXPOSE 8000 5555
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "web:create_app()"]
