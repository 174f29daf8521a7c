# Targets a newcomer can guess. `make setup` once, then `make test`; `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv installs .venv from requirements-dev.lock and resolves the locks (`make lock`); ruff and mypy are needed by
# `make lint` alone. They live outside .venv, in .tools/dev, installed by pip from tools/dev.lock (hashes checked).
DEV_TOOLS := .tools/dev
UV := $(DEV_TOOLS)/bin/uv
RUFF := $(DEV_TOOLS)/bin/ruff
MYPY := $(DEV_TOOLS)/bin/mypy
# SAM CLI and checkov pin libraries that clash with the test environment (awscrt, among
# others), so each lives in its own virtual environment under .tools/, installed from tools/NAME.lock.
SAM := .tools/sam/bin/sam
# `make lint` runs SAM CLI's own cfn-lint (tools/sam.lock pins it).
CFN_LINT := .tools/sam/bin/cfn-lint
CHECKOV := .tools/checkov/bin/checkov
# sam build (runtime python3.13, no container) needs a python3.13 that runs. A pyenv shim does
# not count (it fails unless 3.13 is the selected version), so when none runs, take the newest
# 3.13.x that pyenv has installed and put it first on PATH for sam alone; every other target
# keeps the interpreter it had. Recursive (=) so only the targets that use it pay for the probe.
PYTHON313_BIN = $(shell python3.13 -c '' >/dev/null 2>&1 || { \
	root="$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")"; \
	ls -d "$$root"/versions/3.13.*/bin 2>/dev/null | grep -E '/3\.13\.[0-9]+/bin$$' | sort -V | tail -1; })
SAM_PATH = $(if $(PYTHON313_BIN),$(PYTHON313_BIN):)$(PATH)
# Offline and unattended: no telemetry, and a region for the lint rules when none is configured
# (validation needs no credentials).
export SAM_CLI_TELEMETRY ?= 0
LINT_REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)

.PHONY: setup tools demo test unit test-runtime test-sagemaker lint lock wheels build validate bench clean help

setup: $(VENV)/.installed  ## .venv with everything the tests need, exactly as requirements-dev.lock says

# Again whenever the lock changes: `uv pip sync` installs what the lock lists for this platform and removes
# anything else, every file checked against the lock's hashes. No bytecode is compiled into .venv: the targets
# that run its Python write what they import to PYCACHE (below).
$(VENV)/.installed: requirements-dev.lock $(UV)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make setup needs Python 3.11 or newer, and $(PYTHON) is not: name one, e.g. 'make setup PYTHON=python3.12'" >&2; \
		exit 1; }
	[ -x $(BIN)/python ] || $(UV) venv --quiet --python "$$(command -v $(PYTHON))" $(VENV)
	$(UV) pip sync --python $(BIN)/python --require-hashes requirements-dev.lock
	@# The layer's packages on the venv's path (a .pth file), so that scripts import them as the
	@# functions do in Lambda; pytest has its own pythonpath setting.
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "motor-maintenance-layer.pth").write_text(str(pathlib.Path("layers/shared").resolve()) + "\n")'
	touch $@

$(UV): tools/dev.lock
	[ -x $(DEV_TOOLS)/bin/pip ] || $(PYTHON) -m venv $(DEV_TOOLS)
	$(DEV_TOOLS)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r tools/dev.lock
	touch $(UV) $(RUFF) $(MYPY)

# The bytecode of what .venv's Python imports in the targets below (and their subprocesses): compiled on first
# import into PYCACHE, outside .venv and the source folders, and read from there afterwards, also where
# PYTHONDONTWRITEBYTECODE is set. `make clean` removes it.
PYCACHE := $(CURDIR)/.pycache
demo test unit bench: export PYTHONPYCACHEPREFIX := $(PYCACHE)
demo test unit bench: export PYTHONDONTWRITEBYTECODE :=

# Universal locks: one file for every platform and Python 3.11 or newer, a marker on each line that differs
# (xgboost on macOS, xgboost-cpu elsewhere). Versions already in a lock are kept unless an input asks for
# another; LOCK_FLAGS passes more options to uv, e.g. LOCK_FLAGS='--upgrade-package moto'.
LOCK_FLAGS ?=
LOCK = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(UV)  ## re-resolve requirements-dev.txt (and the files it includes) and tools/*.txt into their .lock files; needs PyPI
	$(LOCK) requirements-dev.txt -o requirements-dev.lock
	for tool in dev sam checkov; do $(LOCK) tools/$$tool.txt -o tools/$$tool.lock || exit 1; done
	@echo "requirements-dev.lock and tools/*.lock written: check them with 'make wheels', install with 'make setup' and 'make tools', commit them with the .txt files"

# The platforms .venv is set up on (Windows through WSL is Linux), each resolved by uv for that platform's
# markers and wheel tags with building from source forbidden: a package without a wheel there fails here.
# Linux means glibc 2.28 or newer (manylinux_2_28), macOS 13 or newer.
WHEEL_PLATFORMS ?= aarch64-apple-darwin x86_64-apple-darwin aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu
WHEEL_PYTHONS ?= 3.11 3.13
WHEELS = $(UV) pip compile --quiet --no-header --only-binary :all: --python-platform $$platform --python-version $$python
wheels: $(UV)  ## check that requirements-dev.lock installs from wheels alone on Linux (x86-64, ARM) and macOS (Intel, Apple silicon); needs PyPI
	@# The check must be able to fail: xgboost-cpu has no wheel for macOS, and the resolver must say so.
	@platform=aarch64-apple-darwin python=3.11; ! echo "xgboost-cpu==3.0.5" | $(WHEELS) - -o /dev/null 2>/dev/null || { \
		echo "make wheels: $(UV) found a macOS wheel of xgboost-cpu, so it does not check wheel tags: no proof" >&2; exit 1; }
	@for platform in $(WHEEL_PLATFORMS); do for python in $(WHEEL_PYTHONS); do \
		$(WHEELS) requirements-dev.lock -o /dev/null || { \
			echo "make wheels: requirements-dev.lock needs a build from source on $$platform, Python $$python (above)" >&2; exit 1; }; \
		echo "$$platform, Python $$python: every package of requirements-dev.lock has a wheel"; \
	done; done

tools: $(SAM) $(CHECKOV)  ## SAM CLI and checkov, each in its own environment

# .tools/NAME from tools/NAME.lock alone, again whenever the lock changes.
TOOL_ENV = { [ -x .tools/$(1)/bin/python ] || $(UV) venv --quiet --python "$$(command -v $(PYTHON))" .tools/$(1); } \
	&& $(UV) pip sync --quiet --compile-bytecode --python .tools/$(1)/bin/python --require-hashes tools/$(1).lock

$(SAM): tools/sam.lock $(UV)
	$(call TOOL_ENV,sam)
	touch $@

$(CHECKOV): tools/checkov.lock $(UV)
	$(call TOOL_ENV,checkov)
	touch $@

demo: setup  ## the two-minute demo: a fleet through the whole pipeline on this machine (local stack)
	$(BIN)/python device/simulate.py --demo

# pytest-xdist: one worker per core; a test module stays on one worker (--dist loadscope), so the local
# stack or the model a module's fixtures start is started once; the longest go first (tests/scheduling.py).
# WORKERS=0 runs in this process.
WORKERS ?= auto
PYTEST_PARALLEL = -n $(WORKERS) --dist loadscope

test: setup  ## the whole test suite: unit (handlers against moto, property-based) and integration (the local stack)
	$(BIN)/pytest $(PYTEST_PARALLEL)

unit: setup  ## the quick check: the unit tests but the slow ones (no broker, no local stack; `make test` runs all)
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow" tests/unit

# The functions run on python3.13 in Lambda: the unit tests, which hold everything that runs there (the layer,
# the handlers, the model's contract), run again on it in a venv of its own. The integration tests exercise the
# local stack, which runs on the developer's Python: `make test` runs them, once, and the unit tests marked slow
# (training on full-size data, which does not run in Lambda) too.
RUNTIME_VENV := .venv-runtime
test-runtime: $(RUNTIME_VENV)/.installed  ## the unit tests again on python3.13, the Lambda runtime's version
	$(RUNTIME_VENV)/bin/python --version
	$(RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not slow" tests/unit

$(RUNTIME_VENV)/.installed: requirements-dev.lock $(UV)
	@PATH="$(SAM_PATH)" python3.13 -c '' 2>/dev/null || { \
		echo "test-runtime needs python3.13 (e.g. 'pyenv install 3.13')" >&2; exit 1; }
	[ -x $(RUNTIME_VENV)/bin/python ] || $(UV) venv --quiet --python "$$(PATH="$(SAM_PATH)" command -v python3.13)" $(RUNTIME_VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(RUNTIME_VENV)/bin/python --require-hashes requirements-dev.lock
	touch $@

# The SageMaker Python SDK v3 is about 1 GB: it stays out of .venv, and model/sagemaker_train.py is
# tested in a venv of its own, against a moto server on loopback. pytest, moto (with Flask for its server)
# and boto3 take their pins from requirements-dev.txt. SAGEMAKER_TESTS=required turns a missing SDK into a failure.
SAGEMAKER_VENV := .venv-sagemaker
test-sagemaker: $(SAGEMAKER_VENV)/.installed  ## model/sagemaker_train.py end to end against moto, in its own venv with the SageMaker SDK v3
	SAGEMAKER_TESTS=required $(SAGEMAKER_VENV)/bin/pytest -q -p no:cacheprovider tests/sagemaker

$(SAGEMAKER_VENV)/.installed: model/requirements-sagemaker.txt model/requirements.txt requirements-dev.txt
	[ -x $(SAGEMAKER_VENV)/bin/python ] || $(PYTHON) -m venv $(SAGEMAKER_VENV)
	$(SAGEMAKER_VENV)/bin/pip install --quiet --upgrade pip
	$(SAGEMAKER_VENV)/bin/pip install --quiet -r model/requirements-sagemaker.txt \
		$$(grep -E '^(boto3|moto|flask|flask-cors|pytest)[<>=[]' requirements-dev.txt)
	touch $@

# mypy runs from .tools/dev and checks the code against .venv's packages (and the stubs there).
lint: setup $(SAM)  ## style, types and the template's linters
	$(RUFF) check .
	$(RUFF) format --check .
	$(MYPY) --python-executable $(BIN)/python
	@# Each handler is an app.py of its own: type-check them one at a time (same strict settings).
	for handler in functions/*/app.py; do $(MYPY) --python-executable $(BIN)/python "$$handler" || exit 1; done
	$(CFN_LINT) template.yaml

validate: tools  ## SAM's own validation and checkov's security checks on the template
	$(SAM) validate --lint --region $(LINT_REGION)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml

build: tools  ## sam build (python3.13, arm64) into .aws-sam/
	@PATH="$(SAM_PATH)" python3.13 -c '' 2>/dev/null || { \
		echo "sam build needs python3.13: install it (e.g. 'pyenv install 3.13'), or with Docker run '$(SAM) build --use-container'" >&2; \
		exit 1; }
	PATH="$(SAM_PATH)" $(SAM) build

# Every figure a ratio against a floor measured in the same run (the machine is shared and noisy).
# The local stack's latency takes minutes: BENCH_SKIP=local_stack (or training, ...) leaves it out.
BENCH_SKIP ?=
bench: setup  ## benchmarks as ratios to floors measured alongside: benchmarks/results/latest.{json,md} (BENCH_SKIP=local_stack,training)
	$(BIN)/python -m benchmarks.run --skip "$(BENCH_SKIP)"

clean:  ## remove build output and caches (keeps the virtual environments)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .local-stack .pycache

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"
