# Two commands matter: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-expr faults loadtest clean

$(STAMP): pyproject.toml sim/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]' -e ./sim
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/argo-http-agent demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check agent sim tests loadtest
	$(BIN)/ruff format --check agent sim tests loadtest
	$(BIN)/lint-imports

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

# locust runs on gevent: it gets its own virtual environment, never the agent's.
loadtest: $(STAMP)
	@test -x loadtest/.venv/bin/locust || ($(PYTHON) -m venv loadtest/.venv && loadtest/.venv/bin/pip install -q -r loadtest/requirements.txt)
	$(BIN)/python loadtest/bench.py --serve --timeout 120 -- loadtest/.venv/bin/locust -f loadtest/locustfile.py --headless -u 20 -r 20 -t 30s --tasks-per-taskset 20 --only-summary

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
