# Two set-up commands matter: `make test` and `make demo`. Everything else is a building block.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum setup.cfg | cut -c1-12)
K8S_BIN = $(shell tools/k8s/build.sh --print)
# Test tools built from the Go module proxy (helm, promtool), cached like the control plane.
TOOLS_BIN = $(shell tools/testtools/build.sh --print)
PYTEST_ARGS ?=
# Python's bytecode and pytest's rewritten test modules are cached (under .cache/, git-ignored) even where the
# environment says not to write them: rewriting every test module again took 10 of the unit tier's seconds.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(CURDIR)/.cache/pycache

.PHONY: all venv cluster-bin tools-bin report-browser lint format typecheck test test-unit test-tools test-integration demo e2e e2e-timing e2e-tensorflow node-bin bench chaos chaos-ci mutation cluster-up cluster-down clean

all: test

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,report]'
	touch $@

venv: $(STAMP)

cluster-bin:
	@command -v go >/dev/null || { echo "need Go (>= 1.26) to build the local control plane" >&2; exit 1; }
	tools/k8s/build.sh >/dev/null

tools-bin:
	tools/testtools/build.sh >/dev/null

# Debian's chromium for the headless check of the comparison's report.html (≈ 20 s once, then nothing to do).
report-browser:
	tools/report/install-chromium.sh >/dev/null

lint: venv
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools
	$(VENV)/bin/shellcheck -x scripts/*.sh tools/k8s/*.sh tools/nodes/*.sh tools/image/*.sh tools/testtools/*.sh tools/report/*.sh tests/cluster/*.sh .ci/run
	$(VENV)/bin/lint-imports --no-cache

format: venv
	$(VENV)/bin/ruff format src tests bench tools
	$(VENV)/bin/ruff check --fix src tests bench tools

typecheck: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tools/image/*.py
	$(VENV)/bin/mypy --strict tests

test: venv cluster-bin tools-bin report-browser lint typecheck
	AISO_K8S_BIN="$(K8S_BIN)" AISO_TOOLS_BIN="$(TOOLS_BIN)" $(PY) -m pytest $(PYTEST_ARGS)

# Pure logic, on every core: under 30 s warm is the standard (README, "Tests"). Only the directories that hold unit
# tests are collected, without the plugins they do not use: importing the integration modules (a schemathesis suite)
# alone took seconds.
test-unit: venv
	$(PY) -m pytest -m unit -n auto -p no:schemathesis -p no:anyio $(PYTEST_ARGS) tests/unit tests/security

test-tools: venv tools-bin report-browser
	AISO_TOOLS_BIN="$(TOOLS_BIN)" $(PY) -m pytest -m tools $(PYTEST_ARGS)

test-integration: venv cluster-bin tools-bin
	AISO_K8S_BIN="$(K8S_BIN)" AISO_TOOLS_BIN="$(TOOLS_BIN)" $(PY) -m pytest -m integration $(PYTEST_ARGS)

demo: venv cluster-bin
	AISO_K8S_BIN="$(K8S_BIN)" $(PY) -m tests.cluster.demo

# The real-node tier (root): kubelet + containerd built from source, runc/CNI from Debian, locally built images.
node-bin: cluster-bin
	tools/nodes/install-deps.sh
	tools/nodes/build.sh >/dev/null
	tools/nodes/images.sh >/dev/null

e2e: venv node-bin
	AISO_K8S_BIN="$(K8S_BIN)" E2E_OUTPUT_DIR="$(E2E_OUTPUT_DIR)" $(PY) -m tests.cluster.e2e
	AISO_K8S_BIN="$(K8S_BIN)" AISO_E2E=1 $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# The same certification with TIMING_PAIRS more native/orchestrator pairs timed (medians of request -> Ready and
# trainer downtime, docs/BENCHMARKS.md); not part of CI.
TIMING_PAIRS ?= 10
e2e-timing: venv node-bin
	AISO_K8S_BIN="$(K8S_BIN)" E2E_OUTPUT_DIR="$(E2E_OUTPUT_DIR)" E2E_COMPARE_ARGS="--timing-pairs $(TIMING_PAIRS)" \
	  $(PY) -m tests.cluster.e2e

# The optional heavier run: the TensorFlow programs (tensorflow-cpu 2.13.1 from PyPI) instead of the numpy stand-in.
e2e-tensorflow: venv node-bin
	tools/nodes/images.sh --tensorflow >/dev/null
	AISO_K8S_BIN="$(K8S_BIN)" E2E_WORKLOAD=tensorflow-local E2E_OUTPUT_DIR="$(E2E_OUTPUT_DIR)" $(PY) -m tests.cluster.e2e

# The fault campaign (docs/reliability.md): every fault kind at every phase boundary, seeded and reproducible.
CHAOS_SEED ?= 1
CHAOS_SCENARIOS ?= 480
chaos: venv cluster-bin
	AISO_K8S_BIN="$(K8S_BIN)" $(PY) -m tests.chaos --scenarios $(CHAOS_SCENARIOS) --seed $(CHAOS_SEED) $(CHAOS_ARGS)

# Its CI form: one pass over the whole grid (160 scenarios).
chaos-ci: venv cluster-bin
	AISO_K8S_BIN="$(K8S_BIN)" $(PY) -m tests.chaos --scenarios 160 --seed $(CHAOS_SEED) $(CHAOS_ARGS)

bench: venv cluster-bin
	AISO_K8S_BIN="$(K8S_BIN)" $(PY) -m bench $(BENCH_ARGS)

# Mutation testing, not in CI (docs/mutation.md): mutmut mutates planning/, compare's measuring, checkpoint's manifest,
# records and saving, and api's schemas ([tool.mutmut] in pyproject.toml); each mutant runs against the unit tests
# that call the function it changed. Work and results in mutants/ (git-ignored). About 30 min on 2 cores.
MUTMUT_ARGS ?= --max-children 2
mutation: venv
	$(PY) -m pip install --quiet -e '.[mutation]'
	rm -rf mutants
	$(VENV)/bin/mutmut run $(MUTMUT_ARGS)
	$(VENV)/bin/mutmut results
	$(VENV)/bin/mutmut results --all true | sed -E 's/^ +//; s/\.x(_|ǁ).*: / /' | awk \
	  '{ total[$$1]++; all++ } $$2 == "killed" { killed[$$1]++; dead++ } END { \
	     for (m in total) printf "%-55s %5d / %5d killed  %5.1f %%\n", m, killed[m], total[m], 100 * killed[m] / total[m]; \
	     printf "%-55s %5d / %5d killed  %5.1f %%\n", "overall", dead, all, 100 * dead / all }' | sort

cluster-up: venv cluster-bin
	scripts/local-cluster.sh up

cluster-down:
	scripts/local-cluster.sh down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
