# Two commands for a new user: `make quickstart` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch is pinned and installed first, so no dependency can pull a CUDA build.
TORCH  := torch==2.13.0
EXTRAS ?= dev,gym,ray,track,wandb,mlflow,verifiers,sql
comma  := ,
STAMP  := $(VENV)/.setup-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup quickstart test test-slow lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	@echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

# Pretrains (or reuses) the organism, GRPO-trains it and prints a before/after table, then
# analyses the run: report.html, summary.json and the elicited / newly-acquired verdicts.
# REPORT_TO=trackio (or wandb, mlflow, tensorboard, none, several joined by commas): dashboards.
quickstart: setup
	$(BIN)/selfplay train configs/quickstart.yaml $(if $(REPORT_TO),--report-to $(REPORT_TO))
	$(BIN)/selfplay analyze configs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -q -m slow --durations=0

lint: setup
	$(BIN)/ruff check envs rewards selfplay tests benchmarks

clean:
	rm -rf $(VENV) models runs .pytest_cache
