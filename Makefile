# The README's commands. `make demo` runs the main job on embedded defaults (local SeaweedFS S3,
# SQLite) and leaves the Dagster UI running; `make test` runs every test on the embedded defaults
# (SQLite), `make test-postgres` runs them on PostgreSQL (application database and Dagster
# instance, on a throwaway local server). All install what they need first, so they work on a
# fresh machine.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Runtime: libopus and libogg for the Opus encoder (recordings/audio/native.py). Tests: unzip checks our ZIPs, and
# PostgreSQL (production's database) runs on a throwaway server: the schema tests, and every test
# under `make test-postgres`; so does Redis (the Celery run engine's broker, docs/DISTRIBUTED.md)
# for the Celery tests.
SYSTEM_PACKAGES := libopus0 libogg0 unzip postgresql redis-server
# Benchmarks (and their small versions in the tests): ffmpeg is the encoder reference; espeak-ng,
# flite and sox speak and resample the real-speech calls of bench/speech.py; opus-tools (opusinfo,
# opusdec: libopusfile) and chromium (Web Audio, headless) check that our Ogg Opus files play
# outside our code.
BENCH_PACKAGES := ffmpeg sox espeak-ng flite opus-tools chromium

.PHONY: install system-deps bench-deps demo test test-postgres test-fast test-resilience lint bench clean-local stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,celery]" -e clients/python
	touch $@

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@# Java's ZipInputStream is the strictest ZIP reader our archives are checked against.
	@command -v java >/dev/null || (DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq default-jre-headless)

bench-deps: system-deps
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing benchmark packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

install: system-deps $(VENV)/.installed

demo: install
	$(BIN)/recordings demo

test: install bench-deps
	RECORDINGS_TEST_BACKEND=sqlite $(BIN)/pytest

test-postgres: install bench-deps
	RECORDINGS_TEST_BACKEND=postgresql $(BIN)/pytest

test-fast: install
	RECORDINGS_TEST_BACKEND=sqlite $(BIN)/pytest -m "not slow"

# The reliability suite alone (docs/RELIABILITY.md): faults, hostile input, load. `make test`
# and `make test-postgres` run it too.
test-resilience: install
	RECORDINGS_TEST_BACKEND=sqlite $(BIN)/pytest -m resilience

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	DAGSTER_HOME=$$(mktemp -d) $(BIN)/dagster definitions validate -w workspace.yaml

bench: install bench-deps
	$(BIN)/python bench/encoder.py
	$(BIN)/python bench/tenant_day.py
	$(BIN)/python bench/api.py

stop:
	-$(BIN)/recordings api stop
	-$(BIN)/recordings s3 stop

clean-local: stop
	rm -rf .local .env
