# make notebooks            execute every notebook in the smoke profile (small subsets, outputs under build/smoke/)
# make notebooks PROFILE=full   the published runs: results/, figures/ and the notebooks' outputs
# make test                 ruff, the unit tests and a smoke run of every notebook
# make lab                  JupyterLab on the notebooks, in the same environment (LAB_ARGS adds options)
# Both create .venv from requirements.lock when it is missing or older than the lock.

PYTHON ?= python3
PROFILE ?= smoke
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: notebooks test lint lab clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --dest $(VENV)/share/schemas \
		cffconvert==2.0.0  # the Citation File Format schema, for the tests (not installed)
	touch $@

notebooks: $(STAMP)
	$(PY) -m vae_utils.run --profile $(PROFILE)

lab: $(STAMP)
	$(PY) -m jupyterlab --notebook-dir=notebooks $(LAB_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check vae_utils tests benchmarks

test: lint
	$(PY) -m pytest

clean:
	rm -rf build .pytest_cache .ruff_cache
