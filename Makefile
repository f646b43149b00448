# Two commands do all the set-up: `make demo` runs the embedded demo, `make test` runs the tests.
# Both create the virtual environment in $(VENV) on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup demo test bench clean-demo

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	bash tests/install_browser.sh $(BIN)/python
	$(BIN)/python -m pytest -q -ra

# Runs every benchmarks/bench_*.py with --small and writes their figures to benchmarks/RESULTS.md.
bench: setup
	$(BIN)/python benchmarks/write_results.py

clean-demo:
	rm -rf results logs resources/demo .snakemake
