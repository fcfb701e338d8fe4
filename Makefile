# Two commands matter: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-expr faults clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/argo-http-agent demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check agent tests loadtest
	$(BIN)/ruff format --check agent tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python loadtest/bench.py

bench-expr: $(STAMP)
	$(BIN)/python loadtest/bench_expr.py

faults: $(STAMP)
	$(BIN)/python loadtest/faults.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
