# Two commands on a fresh machine:  `make run`  (install + run the bot)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint check sync preview bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/python -m bot

# Three workers: most tests wait on bot subprocesses, fakes and sockets, not on the CPU.
TEST_WORKERS ?= 3

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot cogs bench

check: $(VENV)/.installed-run
	$(BIN)/python -m bot check

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.all

screenshots: $(VENV)/.installed-test
	$(BIN)/python -m tools.screenshots

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
