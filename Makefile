# Two commands matter:  `make run`  starts everything;  `make test`  checks everything.
# Both create .venv/ at the project root and install into it on first use: `make run` only what
# running needs, `make test` the dev extras on top (pytest, ruff, mypy, moto, schemathesis, ...).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install --progress-bar on --disable-pip-version-check
FUZZ_MINUTES ?= 30
FUZZ_IDLE_MINUTES ?= 5

.PHONY: run test check lint typecheck install install-dev clean bench fuzz chromium

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What running needs. pip prints one line per package it collects, then the install: about 2 min
# on a cold cache.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing the platform into $(VENV) (first time: about 2 minutes) ..."
	$(PIP) -e .
	@echo "compiling the numba kernels (de-Doppler search, DSA-110 conversion, calibration, imaging) into numba's cache (once, about 1-2 minutes) ..."
	$(BIN)/python -m actors.precompile
	touch $(RUN_STAMP)

# The dev extras on top. It depends on the run stamp, so a changed pyproject.toml reinstalls both.
$(DEV_STAMP): $(RUN_STAMP)
	@echo "installing the dev extras (pytest, ruff, mypy, moto, schemathesis, ...) ..."
	$(PIP) -e '.[dev]'
	touch $(DEV_STAMP)

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python run.py $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The dashboard's browser tests drive Debian's Chromium (a browser download cannot work in CI):
# installed here when missing (as root, or with sudo), else a clear failure, never a skipped test.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "installing Debian's chromium for the browser tests (tests/browser)"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	  fi; \
	  test -x $(CHROMIUM) || { echo "the browser tests need Chromium at $(CHROMIUM): apt-get install -y chromium (as root), or make test CHROMIUM=/path/to/chromium"; exit 1; }; }

test: $(DEV_STAMP) lint typecheck chromium
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

check: test

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

# The long property-based run against a running system (bench/fuzz.py): 30 minutes of rounds, and
# the RSS read again after 5 idle minutes at both ends, the verdict (~45 minutes in all);
# FUZZ_MINUTES=10 FUZZ_IDLE_MINUTES=0 make fuzz for a quick one
fuzz: $(DEV_STAMP)
	$(BIN)/python -m bench.fuzz --minutes $(FUZZ_MINUTES) --idle-minutes $(FUZZ_IDLE_MINUTES)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .schemathesis .hypothesis
