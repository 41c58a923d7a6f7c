# One venv for everything: `make sample` runs the main job, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: sample test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	# The PyTorch reader is tested with torch's CPU build (2.13.0 is the one this project's machines carry).
	$(BIN)/pip install --quiet torch==2.13.0
	touch $@

sample: $(VENV)/.installed
	$(BIN)/tokenmill build

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python -m bench.throughput

clean:
	rm -rf $(VENV) tokenmill-output
