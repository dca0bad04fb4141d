# emobench routine steps. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= results/quickstart
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install run test lint format bench clean

install: $(STAMP)  ## create .venv and install emobench with its dev extras (pinned)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install  ## run the embedded quickstart benchmark, then draw its report
	$(BIN)/emobench run quickstart --out $(RUN) --recompute
	$(BIN)/emobench report $(RUN)

test: install  ## run the test suite
	$(BIN)/python -m pytest

lint: install  ## ruff lint + format check
	$(BIN)/ruff check emobench tests benchmarks
	$(BIN)/ruff format --check emobench tests benchmarks

format: install
	$(BIN)/ruff check --fix emobench tests benchmarks
	$(BIN)/ruff format emobench tests benchmarks

bench: install  ## run the performance benchmarks (figures go in benchmarks/README.md)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
