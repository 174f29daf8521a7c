# Targets a newcomer can guess. `make setup` once, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# SAM CLI and checkov pin libraries that clash with the test environment (awscrt, among
# others), so each lives in its own virtual environment under .tools/.
SAM := .tools/sam/bin/sam
CHECKOV := .tools/checkov/bin/checkov
# sam build for python3.13 needs a python3.13 on PATH; pyenv provides it where present.
export PYENV_VERSION ?= $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | head -1 | sed 's/^\(.*\)$$/3.11.7:\1/')

.PHONY: setup tools test unit lint typecheck template-lint build validate clean

setup: $(BIN)/pytest  ## virtual environment with everything the tests need

$(BIN)/pytest: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
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

test: setup  ## the whole test suite (unit, handlers against moto, property-based)
	$(BIN)/pytest

lint: setup  ## style, types and the template's linters
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

validate: tools  ## SAM's own validation and checkov's security checks on the template
	$(SAM) validate --lint
	$(CHECKOV) --quiet --compact --framework cloudformation -f template.yaml

build: tools  ## sam build (python3.13, arm64) into .aws-sam/
	$(SAM) build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
