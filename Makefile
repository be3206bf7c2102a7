# ocr-pipeline developer commands. `make test` is the README's test command (CI runs it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: help install system-deps test test-fast test-service lint bench-models bench-service clean run build up down logs

help:
	@echo "make install       create $(VENV) and install the project with all extras"
	@echo "make test          install everything, then run the whole test suite"
	@echo "make lint          ruff"
	@echo "make bench-models  params / FLOPs / CPU latency of every architecture"
	@echo "make bench-service sequential vs batched table on a throwaway noop stack (ocr-pipeline bench)"
	@echo "make run           the whole service locally (honcho: web, workers, Flower; redis if none)"
	@echo "make test-service  the service tests (own redis-server and workers, ~1 min)"
	@echo "make build|up|down|logs  the docker compose stack (docker-compose.yml)"

system-deps:
	bash scripts/install-system-deps.sh

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned: the CPU build on this machine's disk (a plain `torch` pulls the CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,service]"
	touch $@

install: system-deps $(VENV)/.installed

test: install
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

test-service: $(VENV)/.installed
	$(PY) -m pytest -q tests/service

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check ocr_tasks web workers tests benchmarks

bench-models: $(VENV)/.installed
	$(PY) benchmarks/bench_models.py

# sequential-vs-batched table on throwaway noop stacks (docs/monitoring.md, docs/BENCHMARKS.md)
bench-service: $(VENV)/.installed
	$(PY) -m ocr_tasks bench --spawn --models noop --docs 10,100 --mode both --json artifacts/bench/noop.json

# --- service -------------------------------------------------------------------------
COMPOSE ?= docker compose

run:
	VENV=$(VENV) bash scripts/run.sh

build:
	$(COMPOSE) build

up:
	$(COMPOSE) up -d
	@echo "upload form: http://127.0.0.1:$${OCR_WEB_PORT:-8000}/   Flower: http://127.0.0.1:$${OCR_FLOWER_PORT:-5555}/"

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f --tail=200

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
