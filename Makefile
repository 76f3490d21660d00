# audiokit: one entry point. Every target creates .venv on first use and installs the pinned stack
# (settings.ini requirements, constrained by constraints.txt), so each works on a fresh machine by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Threads: keep BLAS/torch from oversubscribing the 2 cores when notebooks run in parallel.
export OMP_NUM_THREADS ?= 1
export MPLBACKEND := Agg

.PHONY: install demo test test-all test-fast nbtest pytest docs readme bench export clean-nbs check lab

$(STAMP): settings.ini constraints.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install audiokit with its pinned dependencies

demo: $(STAMP)  ## the main job: the longest pipeline that exists, on data the project makes itself
	$(BIN)/audiokit demo

test: nbtest pytest  ## default test run: notebooks (no slow/gpu cells), then tests/

nbtest: $(STAMP)
	$(BIN)/nbdev_test --do_print --timing

pytest: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow"

test-all: $(STAMP)  ## everything, slow cells included (and gpu cells where CUDA is present)
	flags="slow"; if $(BIN)/python -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then flags="slow gpu"; fi; \
	$(BIN)/nbdev_test --do_print --timing --flags "$$flags"
	$(BIN)/python -m pytest tests -q

docs: $(STAMP)  ## build the docs site offline into _docs/ (nbdev processing + Sphinx/MyST-NB; no Quarto needed)
	$(BIN)/python docs/build.py site

readme: $(STAMP)  ## regenerate README.md from index.ipynb (what nbdev_readme does, without Quarto)
	$(BIN)/python docs/build.py readme

bench: $(STAMP)  ## benchmarks that print figures
	$(BIN)/audiokit bench all

export: $(STAMP)  ## notebooks -> library, then strip notebook noise
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

check: $(STAMP)  ## what CI checks besides the tests: export and clean change nothing
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && git diff --exit-code && test -z "$$(git status --porcelain)"

lab: $(STAMP)
	$(BIN)/jupyter lab nbs
