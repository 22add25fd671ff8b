# Two commands do all the set-up on a fresh machine:
#   make demo   – create .venv, install, then the whole stack end to end (gemirec demo, flows/demo.py):
#                 Prefect server + deployments, a train-gemirec run on the embedded simulator, bentoml serve
#                 of the promoted model, a sample recommendation, a monitor-gemirec run, the Evidently UI;
#                 all left running on 127.0.0.1
#   make test   – create .venv, install, run the test suite
# and `make down` stops everything `make demo` left running.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
START := $(shell date +%s)# when make started: the demo's total time includes the install

.PHONY: demo down test lint install clean prefect-up prefect-down

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gemirec demo
	@echo "make demo: $$(( $$(date +%s) - $(START) ))s in all, set-up included"

down:
	@if [ -x $(BIN)/gemirec ]; then $(BIN)/gemirec down; fi

test: $(STAMP)
	$(BIN)/python -m pytest

# Local Prefect server (127.0.0.1:4200, state in .prefect/) serving the train-gemirec deployment.
prefect-up: $(STAMP)
	$(BIN)/gemirec up

prefect-down:
	@if [ -x $(BIN)/gemirec ]; then $(BIN)/gemirec down; fi

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache
