# Two commands do all the set-up on a fresh machine:
#   make demo   – create .venv, install, train GemiRec on the embedded simulator data, show the results
#   make test   – create .venv, install, run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean prefect-up prefect-down

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/gemirec train --dataset simulator --model gemirec --out runs/demo && \
	$(BIN)/gemirec explain runs/demo/model && \
	$(BIN)/gemirec recommend runs/demo/model --history 1,2,3,4,5 --n 10 && \
	echo "demo finished in $$(( $$(date +%s) - start ))s"

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
