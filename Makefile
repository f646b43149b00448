# Two commands do all the set-up: `make demo` runs the embedded demo, `make test` runs the tests.
# Both create the virtual environment in $(VENV) on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup demo test bench clean-demo

# ultralytics pulls opencv-python, img2dataset and albumentations opencv-python-headless: both
# install the `cv2` package, and the one installed last wins. After the install, both go and the
# pinned headless one is put back: one owner of `cv2`, whatever pip's order.
OPENCV_PIN := $(shell grep -o '"opencv-python-headless==[^"]*"' pyproject.toml | head -1 | tr -d '"')
# The evaluation tests compare our metrics with clip-benchmark's on the same embeddings. Its own
# requirements (scikit-learn, pycocoevalcap, opencv-python) serve parts the tests do not import, so it
# is installed without them, after the rest.
CLIP_BENCHMARK_PIN := clip-benchmark==1.6.2

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip uninstall --quiet -y opencv-python opencv-python-headless
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall '$(OPENCV_PIN)'
	$(BIN)/python -m pip install --quiet --no-deps '$(CLIP_BENCHMARK_PIN)'
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
