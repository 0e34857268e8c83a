# opencrs — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
PORT   ?= 3000

.PHONY: venv run test unit integration lint template-lint bench-quality bench-speed clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli cfn-lint
	touch $@

## Run the service locally: moto server on loopback as S3 + DynamoDB, demo gallery, API on :$(PORT).
run: $(STAMP)
	PORT=$(PORT) $(PY) -m local.serve

## The whole suite: lint, template lint, unit and integration tests.
test: $(STAMP) lint template-lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

template-lint: $(SAM_STAMP)
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1 --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml

bench-quality: $(STAMP)
	$(PY) -m bench.quality

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .ruff_cache
