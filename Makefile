# One venv for everything: `make sample` runs the main job, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Airflow pins its dependencies tightly: the nightly DAG (deploy/airflow/) is tested in a venv of its own (tests/test_airflow_dag.py).
AIRFLOW_VENV := .venv-airflow
# The benchmark measures the plain install (what `make sample` users have), not the test extras.
BENCH_VENV := .venv-bench

.PHONY: sample test bench docs clean report-sample

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed
	# torch's CPU build first (2.13.0 is the one this project's machines carry), so the extras that need torch do not pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(AIRFLOW_VENV)/.installed: deploy/airflow/requirements.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet -r deploy/airflow/requirements.txt
	touch $@

sample: $(VENV)/.installed
	$(BIN)/tokenmill build

test: $(VENV)/.installed-test $(AIRFLOW_VENV)/.installed
	$(BIN)/python -m pytest -q

$(BENCH_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e '.[bench]'
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.throughput $(ARGS)

# The documentation site (MkDocs + Material), built offline into site/; --strict turns a broken link or anchor into an error.
MKDOCS ?= $(BIN)/mkdocs

$(BIN)/mkdocs: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[docs]'

docs: $(MKDOCS)
	NO_MKDOCS_2_WARNING=1 $(MKDOCS) build --strict --site-dir site

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(BENCH_VENV) tokenmill-output site

# The report plot in the docs, from a fresh build of the sample corpus.
report-sample: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[report]'
	$(BIN)/python -m pipelines.inspect.report --sample-png docs/report-sample.png
