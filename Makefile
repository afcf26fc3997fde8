# imgrec: `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install.stamp
export WANDB_SILENT ?= true

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]' 2>&1 | { grep -v -e 'is ignored' -e 'BuildBackendWarning' || true; }
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install imgrec with dev extras at the versions in requirements.lock (instant when nothing changed)

lock: ## Re-resolve pyproject.toml's dependencies afresh and pin them in requirements.lock (after changing dependencies)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --dry-run --ignore-installed --report $(VENV)/lock-report.json -e '.[dev]' 2>&1 \
		| { grep -v -e 'is ignored' -e 'BuildBackendWarning' || true; }
	$(PY) tools/lock.py $(VENV)/lock-report.json $(LOCK)

run: install ## Run the study's preprocessing sweep on the embedded synthetic dataset
	$(PY) -m imgrec.run +experiment=preproc_sweep

test: install ## Run the fast test suite (no `slow` or `gpu` tests), one worker per CPU core
	$(PY) -m pytest -m "not slow and not gpu" -q -n auto --dist loadscope --durations=10

test-gpu: install ## Run the GPU suite (tests/test_gpu.py: every path on CUDA, a few minutes; each test skips without CUDA)
	$(PY) -m pytest -m gpu -q -rA --durations=0

test-all: install ## Run every test, slow ones included (gpu ones skip without CUDA)
	$(PY) -m pytest -q

bench: install ## Run the benchmarks (tens of minutes on 2 CPU cores), print the ratios, write bench/out/*.json
	$(PY) -m bench

notebooks: install ## Execute notebooks/*.ipynb with nbmake (on the embedded data; a few minutes)
	$(PY) -m pytest -q --nbmake notebooks/*.ipynb

strip-notebooks: install ## Clear notebook outputs before committing (a test checks they are stripped)
	$(PY) notebooks/strip_outputs.py

experiment: install ## Regenerate one committed reference run: make experiment NAME=synthetic_lite0 (see experiments/)
	$(PY) experiments/reference.py $(NAME)

experiments: install ## Regenerate every reference run in experiments/ (the idl2020 one needs ../shared/data)
	$(PY) experiments/reference.py synthetic_lite0 synthetic_missing_labels synthetic_preproc_sweep idl2020_dev_lite0

reproduce: install ## The study on ../shared/data/idl2020-dev: every run, then experiments/idl2020/REPORT.md (about 2-3 hours on 2 CPU cores; ARGS=trainer=gpu)
	$(PY) -m experiments.idl2020.reproduce $(ARGS)

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check imgrec tests bench experiments tools hydra_plugins

clean: ## Remove run outputs, caches and build leftovers (keeps .venv)
	rm -rf logs wandb outputs multirun .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

.PHONY: help install lock run test test-gpu test-all bench notebooks strip-notebooks experiment experiments reproduce lint clean
