# opencrs — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
PORT   ?= 3000
# Lambda architecture the layer check builds for (the template's default); ARCH=x86_64 too.
ARCH   ?= arm64
LAYER_CHECK := .aws-sam/layer-check

.PHONY: venv run test browser lint template-lint layer-check bench-quality bench-speed bench-coldstart clean

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
	PORT=$(PORT) OPENBLAS_NUM_THREADS=1 $(PY) -m local.serve

## The whole suite: lint, template lint, unit, integration and browser tests.
test: $(STAMP) browser lint template-lint layer-check
	$(PY) -m pytest -q

## Debian's Chromium and its driver, for the console's browser tests (installed once).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## Style, and the dependency rule of pyproject.toml's [tool.importlinter] contracts.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

template-lint: $(SAM_STAMP)
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1 --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml
	@# cfn-lint again on what SAM deploys: catches e.g. the bucket <-> function cycle.
	$(SAM_VENV)/bin/python scripts/transform_template.py template.yaml .aws-sam/transformed.json
	$(SAM_VENV)/bin/cfn-lint .aws-sam/transformed.json

## Build both layers as `sam build` would (no Docker; pip downloads the $(ARCH) wheels) and
## fail if any function plus the layers exceeds Lambda's 250 MB unzipped.
layer-check: $(STAMP)
	rm -rf $(LAYER_CHECK)
	$(MAKE) -s -C layers/deps build-DepsLayer ARCH=$(ARCH) PYTHON=$(abspath $(PY)) \
		ARTIFACTS_DIR=$(abspath $(LAYER_CHECK))/DepsLayer
	$(MAKE) -s -C layers/opencrs build-OpenCRSLayer ARTIFACTS_DIR=$(abspath $(LAYER_CHECK))/OpenCRSLayer
	@# Function code as SAM copies it (no requirements.txt, so no install step).
	for dir in functions/*/; do \
		name=$$(basename $$dir); mkdir -p $(LAYER_CHECK)/$$name; \
		cp -R $$dir. $(LAYER_CHECK)/$$name/; \
		find $(LAYER_CHECK)/$$name -depth -type d -name __pycache__ -exec rm -rf {} +; \
	done
	@echo "architecture: $(ARCH)"
	$(PY) layers/check_size.py $(LAYER_CHECK)

bench-quality: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.fetch_photos
	$(PY) -m bench.quality $(BENCH_ARGS)

## Gallery-size benchmark (run by hand): BENCH_ARGS="--sizes 1000,10000,100000" for the
## README table; the default 1k,10k takes ~3 min once distractor features are cached.
bench-speed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.fetch_photos
	$(PY) -m bench.speed $(BENCH_ARGS)

## Handler import times under CPython 3.12 with the layers as built (run by hand).
bench-coldstart: $(STAMP)
	$(PY) -m bench.coldstart

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .ruff_cache
