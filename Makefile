# guardproxy — `make run` serves config.yaml on the mock provider; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: run test lint install system-deps compat compat-deps bench-deps bench soak fuzz clean cluster cluster-deps

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Services the tests start themselves (a throw-away redis-server on a free loopback port, headless
# Chromium for the dashboard test, wrk for bench/tests); installed with apt when missing.
system-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null; }
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
	$(VENV)/bin/pytest -q -p no:cacheprovider --ignore=tests/compat --ignore=tests/cluster $(PYTEST_ARGS)

# The compatibility suite (tests/compat): real client SDKs against guardproxy, which runs from .venv.
# Python clients live in their own venvs (instructor pins an older openai), Node ones come from the
# committed lockfile, with Node 22 itself as an npm package.
COMPAT_VENV ?= .venv-compat
INSTRUCTOR_VENV ?= .venv-instructor
COMPAT_STAMP := $(COMPAT_VENV)/.installed
INSTRUCTOR_STAMP := $(INSTRUCTOR_VENV)/.installed
NODE_DIR := tests/compat/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

$(COMPAT_STAMP): tests/compat/requirements.txt
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -r $<
	@touch $@

$(INSTRUCTOR_STAMP): tests/compat/requirements-instructor.txt
	@test -x $(INSTRUCTOR_VENV)/bin/python || $(PYTHON) -m venv $(INSTRUCTOR_VENV)
	$(INSTRUCTOR_VENV)/bin/python -m pip install -q --upgrade pip
	$(INSTRUCTOR_VENV)/bin/python -m pip install -q -r $<
	@touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing npm with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm) >/dev/null; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

compat-deps: $(STAMP) $(COMPAT_STAMP) $(INSTRUCTOR_STAMP) $(NODE_STAMP)

compat: compat-deps
	GUARDPROXY_PYTHON=$(abspath $(PY)) INSTRUCTOR_PYTHON=$(abspath $(INSTRUCTOR_VENV))/bin/python \
	  $(COMPAT_VENV)/bin/pytest -q -p no:cacheprovider -p no:unraisableexception --confcutdir=tests/compat tests/compat $(PYTEST_ARGS)

bench-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || { \
	  echo "installing redis-server and wrk with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server wrk) >/dev/null; }

bench: $(STAMP) bench-deps
	$(PY) -m bench.run

soak: $(STAMP)
	$(PY) -m bench.soak

fuzz: $(STAMP)
	$(PY) -m pytest -q tests/fuzz --fuzz-long

# The fleet on loopback (tests/cluster, ~1 min): three `guardproxy serve` replicas, one redis-server and
# HAProxy (deploy/haproxy.cfg); bounded load with kill -9 / SIGTERM of replicas, shared single-flight,
# limits, cooldowns and hot reload. `make cluster-scale` prints req/s and p99 for 1, 2 and 3 replicas.
cluster-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v haproxy >/dev/null 2>&1 || { \
	  echo "installing redis-server and haproxy with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server haproxy) >/dev/null; }

cluster: $(STAMP) cluster-deps
	@mkdir -p .guardproxy  # the last run's logs stay in .guardproxy/cluster
	$(VENV)/bin/pytest -q -s -p no:cacheprovider --basetemp=.guardproxy/cluster tests/cluster $(PYTEST_ARGS)

cluster-scale: $(STAMP) cluster-deps
	$(PY) -m tests.cluster.scale

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(INSTRUCTOR_VENV) $(NODE_DIR)/node_modules .guardproxy .pytest_cache .mypy_cache .ruff_cache
