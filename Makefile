# peftbench — `make help` lists the targets.
# GPU users: install your CUDA build of torch into the venv first, then `make install TORCH=`.
# Installs take exact versions from constraints.txt (`make lock` refreshes it; CONSTRAINTS= installs unpinned).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
CONSTRAINTS ?= constraints.txt
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: help install lock demo test bench report glue-data glue glue-report glue-v2 glue-v2-report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# torch goes in first (under the constraints, which pin its dependencies but not torch); the rest then gets
# the constraints less what the installed torch itself requires, so a GPU user's own torch is never fought.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) "$(TORCH)")
	$(if $(CONSTRAINTS),$(BIN)/python scripts/constraints.py for-torch $(CONSTRAINTS) > $(VENV)/constraints.txt)
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(VENV)/constraints.txt) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install peftbench at constraints.txt's versions (CPU torch unless TORCH= is overridden)

LOCK_VENV ?= .venv-lock
lock:  ## re-resolve the newest versions pyproject.toml allows in a scratch venv and write constraints.txt (then make test)
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(LOCK_VENV)/bin/python -m pip install -q "$(TORCH)")
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[dev]"
	$(LOCK_VENV)/bin/python scripts/constraints.py freeze > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)
	@echo "constraints.txt refreshed: make test (reinstalls .venv at the new versions), then commit it"

demo: $(STAMP)  ## install, then train+evaluate the default (MiniLM + LoRA on the offline demo task) and report
	$(BIN)/peftbench run
	$(BIN)/peftbench report results

PYTEST_ARGS ?= -m "not slow"
test: $(STAMP)  ## install, then run the offline test suite (PYTEST_ARGS= to include slow tests)
	@rc=0; $(BIN)/python -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5) for PYTEST_ARGS=$(PYTEST_ARGS)"; rc=0; fi; exit $$rc

bench: $(STAMP)  ## benchmark the harness: overhead (also at 5 ms steps, profiled), peft and Trainer parity, memory, scaling, startup (~15 min, CPU)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

report: $(STAMP)  ## print the Markdown table of everything under results/
	$(BIN)/peftbench report results

GLUE_OUT  ?= results/glue-minilm
GLUE_LRS  ?= default
GLUE_DOCS ?= docs/results/glue-minilm
GLUE_COST ?= cost-runs
GLUE_COLUMNS := glue/sst2=SST-2,glue/mrpc:accuracy=MRPC acc,glue/mrpc:f1=MRPC F1,glue/cola:matthews_correlation=CoLA MCC,glue/rte=RTE,glue/stsb:pearson=STS-B P,glue/stsb:spearmanr=STS-B S,avg,params,params_pct
glue: glue-data $(STAMP)  ## MiniLM x 13 methods x RTE, MRPC, STS-B, CoLA, SST-2 x 3 seeds on GLUE_DATA (~7 h on 2 cores, resumable; GLUE_LRS=sweep: 3 rates each)
	@rc=0; GLUE_DATA='$(GLUE_DATA)' GLUE_OUT=$(GLUE_OUT) PEFTBENCH=$(BIN)/peftbench scripts/glue_minilm.sh $(GLUE_LRS) || rc=$$?; \
	$(MAKE) glue-report GLUE_DOCS=$(GLUE_OUT) GLUE_COST=runs; exit $$rc

# Run in GLUE_DOCS, so that the tables name run files relative to it (tests/report/test_glue_table.py regenerates them).
glue-report: $(STAMP)  ## the MiniLM GLUE tables, plots and page from GLUE_DOCS/runs (default: regenerate docs/results/glue-minilm)
	cd $(GLUE_DOCS) && $(abspath $(BIN))/peftbench report runs --best-of train.lr --columns '$(GLUE_COLUMNS)' -o scores.md
	cd $(GLUE_DOCS) && $(abspath $(BIN))/peftbench report runs --best-of train.lr --columns '$(GLUE_COLUMNS)' --format latex -o scores.tex
	cd $(GLUE_DOCS) && $(abspath $(BIN))/peftbench report runs --best-of train.lr --plots plots -o plots/scores-all.md
	cd $(GLUE_DOCS) && $(abspath $(BIN))/peftbench report runs --best-of train.lr --format html -o page.html
	cd $(GLUE_DOCS) && $(abspath $(BIN))/peftbench report $(GLUE_COST) --table cost --tasks glue/sst2 -o cost.md

# The GLUE files `make glue` and `make glue-v2` read: a folder laid out as GLUE distributes it (RTE/, MRPC/,
# CoLA/, STS-B/, SST-2/, each with train.tsv and dev.tsv). No default: see README "Getting the data".
GLUE_DATA   ?=
glue-data:
	@test -n '$(GLUE_DATA)' || { echo "GLUE_DATA is not set: make $(MAKECMDGOALS) GLUE_DATA=DIR, DIR a folder laid out as GLUE distributes it (RTE/, MRPC/, CoLA/, STS-B/, SST-2/; peftbench data glue DIR writes one; README \"Getting the data\")" >&2; exit 2; }
	@test -d '$(GLUE_DATA)' || { echo "GLUE_DATA=$(GLUE_DATA): no such folder (README \"Getting the data\")" >&2; exit 2; }
GLUE2_OUT   ?= results/glue-minilm-v2
GLUE2_DOCS  ?= docs/results/glue-minilm-v2
GLUE2_ARGS  ?=
GLUE2_COLUMNS := glue/sst2=SST-2,glue/mrpc:accuracy=MRPC acc,glue/mrpc:f1=MRPC F1,glue/cola:matthews_correlation=CoLA MCC,glue/rte=RTE,glue/stsb:pearson=STS-B P,glue/stsb:spearmanr=STS-B S,params,params_pct
GLUE2_HEAD    := glue/sst2=SST-2,glue/stsb:pearson=STS-B P
GLUE2_PILOT   := glue/cola:matthews_correlation=CoLA MCC,glue/rte=RTE
GLUE2_PARITY  := glue/sst2=SST-2,glue/stsb:pearson=STS-B P,glue/stsb:spearmanr=STS-B S
GLUE2_PARITY_ROWS := method,config.hardware.name,config.hardware.mixed_precision,config.train.group_by_length
glue-v2: glue-data $(STAMP)  ## the MiniLM GLUE v2 protocol (scripts/glue_v2.py: head stage, rate pilot, grid; resumable; bf16: a GPU or a bf16 CPU), then its tables under GLUE2_OUT/export; one GPU: GLUE2_ARGS='--hardware gpu --jobs 14 --mps'
	@rc=0; $(BIN)/python scripts/glue_v2.py --data $(GLUE_DATA) --out $(GLUE2_OUT) --peftbench '$(abspath $(BIN))/peftbench' $(GLUE2_ARGS) || rc=$$?; \
	$(BIN)/python scripts/glue_v2.py --out $(GLUE2_OUT) --export $(GLUE2_OUT)/export && \
	$(MAKE) glue-v2-report GLUE2_DOCS=$(GLUE2_OUT)/export; exit $$rc

glue-v2-report: $(STAMP)  ## the v2 tables (scores, head stage, pilot, parity) from GLUE2_DOCS (default: regenerate docs/results/glue-minilm-v2)
	cd $(GLUE2_DOCS) && $(abspath $(BIN))/peftbench report runs --columns '$(GLUE2_COLUMNS)' -o scores.md
	cd $(GLUE2_DOCS) && $(abspath $(BIN))/peftbench report runs --columns '$(GLUE2_COLUMNS)' --format latex -o scores.tex
	cd $(GLUE2_DOCS) && $(abspath $(BIN))/peftbench report head/runs --rows method,config.model.pooling --columns '$(GLUE2_HEAD)' -o head.md
	cd $(GLUE2_DOCS) && $(abspath $(BIN))/peftbench report pilot/runs runs --rows method,config.train.lr --tasks glue/cola,glue/rte --seeds 1 --columns '$(GLUE2_PILOT)' -o pilot.md
	cd $(GLUE2_DOCS) && $(abspath $(BIN))/peftbench report head/runs parity/runs --methods lora --where model.pooling=cls --rows $(GLUE2_PARITY_ROWS) --columns '$(GLUE2_PARITY)' -o parity.md

clean:  ## remove the venv and caches (keeps results/)
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
