# guardproxy — `make run` serves config.yaml on the mock provider; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: run test lint install system-deps bench-deps bench soak fuzz clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Services the tests start themselves (a throw-away redis-server on a free loopback port, headless
# Chromium for the dashboard test); installed with apt when missing.
system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; }

run: $(STAMP)
	$(VENV)/bin/guardproxy serve --config config.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check proxy validators tests bench
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || { \
	  echo "installing redis-server and wrk with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server wrk) >/dev/null; }

bench: $(STAMP) bench-deps
	$(PY) bench/run.py

soak: $(STAMP)
	$(PY) bench/soak.py

fuzz: $(STAMP)
	$(PY) -m pytest -q tests/fuzz --fuzz-long

clean:
	rm -rf $(VENV) .guardproxy .pytest_cache .mypy_cache .ruff_cache
