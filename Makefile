# Targets a newcomer can guess. `make setup` once, then `make test`; `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# SAM CLI and checkov pin libraries that clash with the test environment (awscrt, among
# others), so each lives in its own virtual environment under .tools/.
SAM := .tools/sam/bin/sam
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

.PHONY: setup tools demo test unit test-runtime test-sagemaker lint build validate bench clean help

setup: $(BIN)/pytest  ## virtual environment with everything the tests need

$(BIN)/pytest: requirements-dev.txt device/requirements.txt model/requirements.txt model/requirements-archive.txt local/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@# The layer's packages on the venv's path (a .pth file), so that scripts import them as the
	@# functions do in Lambda; pytest has its own pythonpath setting.
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "motor-maintenance-layer.pth").write_text(str(pathlib.Path("layers/shared").resolve()) + "\n")'
	touch $@

tools: $(SAM) $(CHECKOV)  ## SAM CLI and checkov, each in its own environment

$(SAM):
	$(PYTHON) -m venv .tools/sam
	.tools/sam/bin/pip install --quiet --upgrade pip
	.tools/sam/bin/pip install --quiet "aws-sam-cli==1.170.0"

$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet --upgrade pip
	.tools/checkov/bin/pip install --quiet "checkov==3.3.30"

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

$(RUNTIME_VENV)/.installed: requirements-dev.txt device/requirements.txt model/requirements.txt model/requirements-archive.txt local/requirements.txt
	@PATH="$(SAM_PATH)" python3.13 -c '' 2>/dev/null || { \
		echo "test-runtime needs python3.13 (e.g. 'pyenv install 3.13')" >&2; exit 1; }
	[ -x $(RUNTIME_VENV)/bin/python ] || PATH="$(SAM_PATH)" python3.13 -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# The SageMaker Python SDK v3 is about 1 GB: it stays out of .venv, and model/sagemaker_train.py is
# tested in a venv of its own, against a moto server on loopback. pytest, moto and boto3 take their
# pins from requirements-dev.txt. SAGEMAKER_TESTS=required turns a missing SDK into a failure.
SAGEMAKER_VENV := .venv-sagemaker
test-sagemaker: $(SAGEMAKER_VENV)/.installed  ## model/sagemaker_train.py end to end against moto, in its own venv with the SageMaker SDK v3
	SAGEMAKER_TESTS=required $(SAGEMAKER_VENV)/bin/pytest -q -p no:cacheprovider tests/sagemaker

$(SAGEMAKER_VENV)/.installed: model/requirements-sagemaker.txt model/requirements.txt requirements-dev.txt
	[ -x $(SAGEMAKER_VENV)/bin/python ] || $(PYTHON) -m venv $(SAGEMAKER_VENV)
	$(SAGEMAKER_VENV)/bin/pip install --quiet --upgrade pip
	$(SAGEMAKER_VENV)/bin/pip install --quiet -r model/requirements-sagemaker.txt \
		$$(grep -E '^(boto3|moto|pytest)[<>=[]' requirements-dev.txt)
	touch $@

lint: setup  ## style, types and the template's linters
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# Each handler is an app.py of its own: type-check them one at a time (same strict settings).
	for handler in functions/*/app.py; do $(BIN)/mypy "$$handler" || exit 1; done
	$(BIN)/cfn-lint template.yaml

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
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .local-stack

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"
