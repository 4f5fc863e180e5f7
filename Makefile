# Every target builds its own virtualenv, so a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | $(PYTHON) -c "import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])")

.PHONY: demo test lint typecheck wheel-smoke startup-bench bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## Run the main job on the embedded SQLite default: a short end-to-end demo.
demo: $(STAMP)
	$(BIN)/ledger demo

## Install what is needed, then lint, type-check and run the whole test suite.
test: lint typecheck
	$(BIN)/ledger policy lint
	# Byte code is cached even where PYTHONDONTWRITEBYTECODE is set: many tests start child
	# interpreters, and each would otherwise compile every module it imports again.
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check ledger tests bench migrations
	$(BIN)/ruff format --check ledger tests bench migrations

typecheck: $(STAMP)
	$(BIN)/mypy

## Build the wheel, install it into a fresh virtualenv and run the demo and verify from it.
wheel-smoke:
	PYTHON=$(PYTHON) bash .ci/wheel-smoke

## Benchmarks (figures in BENCHMARKS.md): the ledger core at 1M entries, then the recorder.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/ledger_bench.py --entries 1000000
	$(BIN)/python bench/recorder.py

clean:
	rm -rf $(VENV) .ledger build *.egg-info
