# citygw developer and CI entry points. `make test` is what .ci/run calls.
#
# Knobs: PYTHON (interpreter for the venv), PYTEST_ARGS (e.g. a test path or -k expr),
# TEST_TIMEOUT_S (per test), PYTEST_WORKERS (pytest-xdist processes, 0: none; the tests mostly
# wait on brokers, ptys and subprocesses, so 3 on 2 cores), PYTEST_WALL_S (whole pytest run),
# DEMO_SECONDS, BENCH_ARGS,
# CHAOS_ARGS (make chaos), CHAOS_SLICE_WALL_S (the chaos slice in make test).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=
TEST_TIMEOUT_S ?= 120
PYTEST_WORKERS ?= 3
PYTEST_WALL_S ?= 840
BENCH_ARGS ?=
FUZZ_INPUTS ?= 1000000
FUZZ_SEED ?= 1
CHAOS_ARGS ?=
CHAOS_SLICE_WALL_S ?= 480

DEB_PACKAGES := mosquitto mosquitto-clients socat dbus libdbus-1-dev libglib2.0-dev pkg-config systemd shellcheck \
	nodejs debootstrap lintian postgresql chromium

# The install stamp is keyed on the content of the files that decide what the venv holds,
# so `make install` is a no-op until one of them changes (mtimes from git are meaningless).
INPUTS_HASH := $(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.citygw-installed-$(INPUTS_HASH)
CONSTRAINTS := $(if $(wildcard constraints.txt),-c constraints.txt)

.PHONY: help venv install lock deps test lint typecheck pytest demo bench clean \
	firmware-interpreter fuzz chaos chaos-slice

help:
	@echo "make deps       Debian packages for tests (root + apt-get; else lists what is missing)"
	@echo "make install    .venv with citygw editable + test extra, pinned by constraints.txt"
	@echo "make lock       regenerate constraints.txt from a fresh venv"
	@echo "make test       deps, install, ruff, mypy, pytest (what CI runs)"
	@echo "make lint | typecheck | pytest | demo [DEMO_SECONDS=N] | bench | clean"
	@echo "make fuzz       the hub decoders under FUZZ_INPUTS mutated messages each (FUZZ_SEED)"
	@echo "make chaos [CHAOS_ARGS=\"--minutes 20 --seed 1\"]   faults vs the real agent (bench/README.md)"
	@echo "make chaos-slice  the 5-minute chaos slice as a pytest test (part of make test)"
	@echo "make wheelhouse | deb   offline wheels; dist/citygw_<version>_<arch>.deb (DEB_ARCHES)"

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "citygw needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# MicroPython stubs go in a folder per board, apart from the venv's site-packages: they shadow
# stdlib names (time, gc, ...) and the boards' stubs collide with each other.
# tests/firmware/test_build.py type-checks firmware/ against each.
MPSTUBS := $(VENV)/mpstubs
MPSTUB_BOARDS := esp32 rp2

$(STAMP): | $(VPY)
	rm -f $(VENV)/.citygw-installed-*
	$(VPY) -m pip install --quiet $(CONSTRAINTS) -e '.[test]'
	for board in $(MPSTUB_BOARDS); do \
		rm -rf $(MPSTUBS)/$$board; \
		$(VPY) -m pip install --quiet --disable-pip-version-check $(CONSTRAINTS) \
			--target $(MPSTUBS)/$$board micropython-$$board-stubs; \
	done
	touch $@

# The MicroPython interpreter (npm, WebAssembly), installed once in firmware/sim at the version
# its package-lock.json pins: `citygw node simulate` runs it from there, and so do tests/firmware
# (run.mjs) and the virtual board. Re-run only when the lock file changes.
SIM_DIR := firmware/sim
SIM_LOCK_HASH := $(shell sha256sum $(SIM_DIR)/package-lock.json 2>/dev/null | cut -c1-16)
SIM_STAMP := $(SIM_DIR)/node_modules/.citygw-installed-$(SIM_LOCK_HASH)

$(SIM_STAMP): $(SIM_DIR)/package-lock.json
	@command -v npm >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "firmware: installing npm"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm \
				>/dev/null; \
		else echo "firmware: npm is missing; install Node.js >= 18 with npm" >&2; exit 1; fi; }
	cd $(SIM_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

firmware-interpreter: $(SIM_STAMP)

venv install: $(STAMP)

lock:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet -e '.[test,flash]'; \
	{ echo "# Exact pins for the dev/test venv. Regenerate with 'make lock'; do not edit."; \
	  "$$tmp/venv/bin/python" -m pip freeze --exclude-editable; \
	  grep '^micropython-' constraints.txt || true; } > constraints.txt.new; \
	mv constraints.txt.new constraints.txt; \
	echo "constraints.txt: $$(grep -vc '^#' constraints.txt) pins"

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "deps: installing$$missing"; \
		log=$$(mktemp); \
		export DEBIAN_FRONTEND=noninteractive; \
		if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
				-o Dpkg::Use-Pty=0 $$missing; } >"$$log" 2>&1; then \
			cat "$$log" >&2; rm -f "$$log"; echo "deps: apt-get failed" >&2; exit 1; \
		fi; \
		rm -f "$$log"; \
	else \
		echo "deps: missing Debian packages:$$missing" >&2; \
		echo "deps: not root or no apt-get; install them yourself (e.g. sudo make deps)" >&2; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict gateway drivers

# pytest's exit 5 means "no tests collected": tests exist, so that is a failure here.
pytest: deps $(STAMP) $(SIM_STAMP)
	@rc=0; \
	timeout --foreground --kill-after=30 $(PYTEST_WALL_S) \
		$(VPY) -m pytest -q -rfEs -n $(PYTEST_WORKERS) --timeout=$(TEST_TIMEOUT_S) -m "not chaos" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests; that is a failure" >&2; fi; \
	if [ $$rc -eq 124 ]; then echo "make: pytest ran over $(PYTEST_WALL_S)s and was stopped" >&2; fi; \
	if [ $$rc -ne 0 ]; then exit 1; fi

# The chaos slice (tests/integration/test_chaos.py): ~5 minutes of faults against the real agent,
# apart from `pytest` so its wall-clock budget is its own; `make test` runs it after pytest.
chaos-slice: deps $(STAMP)
	@rc=0; \
	timeout --foreground --kill-after=30 $(CHAOS_SLICE_WALL_S) \
		$(VPY) -m pytest -q -rfEs -m chaos tests/integration/test_chaos.py || rc=$$?; \
	if [ $$rc -eq 124 ]; then echo "make: the chaos slice ran over $(CHAOS_SLICE_WALL_S)s" >&2; fi; \
	if [ $$rc -ne 0 ]; then exit 1; fi

# The long chaos run (bench/chaos.py; bench/README.md): ~20 minutes, seeded, report on stdout.
chaos: deps $(STAMP)
	$(VPY) bench/chaos.py $(CHAOS_ARGS)

# Runs every check even when an earlier one fails, so one CI run reports all of them.
test: deps $(STAMP) $(SIM_STAMP)
	@rc=0; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(MAKE) --no-print-directory typecheck || rc=1; \
	$(MAKE) --no-print-directory pytest || rc=1; \
	$(MAKE) --no-print-directory chaos-slice || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (see above)" >&2; fi; \
	exit $$rc

demo: deps $(STAMP) $(SIM_STAMP)
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] \
		|| $(VPY) -c 'import amqtt' 2>/dev/null \
		|| { echo "demo: no Mosquitto; installing the embedded amqtt broker"; \
		     $(VPY) -m pip install --quiet -e '.[demo]'; }
	$(VENV)/bin/citygw demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))

# Every hub decoder (v1, v2, v3, births, status, metrics, config state) under FUZZ_INPUTS
# mutated real messages each: only "invalid" events, bounded time and memory (issue 16).
# `make test` runs a few thousand of them (tests/unit/test_hub_fuzz.py).
fuzz: $(STAMP)
	$(VPY) tests/fuzz/hub_fuzz.py --inputs $(FUZZ_INPUTS) --seed $(FUZZ_SEED)

# The bench runs a real Mosquitto (see bench/README.md), and ThingsBoard IoT Gateway side by
# side from its own venv (bench/.tb-venv, never the project's); without it that part is skipped.
TB_VENV := bench/.tb-venv
TB_GATEWAY := thingsboard-gateway==3.8.5
bench: deps
bench: $(STAMP)
	@[ -x $(TB_VENV)/bin/thingsboard-gateway ] || { \
		echo "bench: installing $(TB_GATEWAY) into $(TB_VENV)"; \
		$(PYTHON) -m venv $(TB_VENV) && $(TB_VENV)/bin/pip install --quiet \
			--disable-pip-version-check $(TB_GATEWAY) \
		|| { echo "bench: could not install $(TB_GATEWAY); the side-by-side run is skipped" >&2; \
		     rm -rf $(TB_VENV); }; }
	$(VPY) bench/run.py $(BENCH_ARGS)
	$(VPY) bench/fleet_push.py --count 200 --write
	$(VPY) bench/decoders.py
	$(VPY) bench/rangefinder.py
	$(VPY) bench/alert_latency.py --alerts 400 --write
	$(VPY) bench/hub_ingest.py

# Wheels for offline installs on aarch64 and armv7l gateways (deploy/install.sh --wheelhouse).
.PHONY: wheelhouse
wheelhouse: $(STAMP)
	$(VPY) deploy/wheelhouse.py

# Debian packages (dist/citygw_<version>_<arch>.deb) from the wheelhouse; deploy/build-deb.sh.
DEB_ARCHES ?= arm64 armhf amd64
.PHONY: deb
deb: wheelhouse
	for arch in $(DEB_ARCHES); do deploy/build-deb.sh --arch $$arch --out dist; done

clean:
	rm -rf $(VENV) $(TB_VENV) $(SIM_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
