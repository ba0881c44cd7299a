# peftbench — `make help` lists the targets.
# GPU users: install your CUDA build of torch into the venv first, then `make install TORCH=`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: help install demo test bench report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q "$(TORCH)")
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install peftbench (CPU torch unless TORCH= is overridden)

demo: $(STAMP)  ## install, then train+evaluate the default (MiniLM + LoRA on the offline demo task) and report
	$(BIN)/peftbench run
	$(BIN)/peftbench report results

PYTEST_ARGS ?= -m "not slow"
test: $(STAMP)  ## install, then run the offline test suite (PYTEST_ARGS= to include slow tests)
	@rc=0; $(BIN)/python -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5) for PYTEST_ARGS=$(PYTEST_ARGS)"; rc=0; fi; exit $$rc

bench: $(STAMP)  ## benchmark the harness: overhead, peft parity, memory, scaling, startup (~8 min, CPU)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

report: $(STAMP)  ## print the Markdown table of everything under results/
	$(BIN)/peftbench report results

clean:  ## remove the venv and caches (keeps results/)
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
