# SpotVLM developer commands. `make test` and `make demo` create .venv on first use.
# torch==2.13.0 (CPU) is installed first. constraints.txt pins every dependency to the versions last
# tested (torch included, so nothing pulls a newer CUDA torch); `make lock` refreshes it on purpose.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.spotvlm-installed
EXTRAS ?= ml,viz,test

LOCK_VENV ?= .venv-lock
LOCK_EXTRAS ?= ml,viz,test,docs

.PHONY: venv test test-all demo lint bench docs lock clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q test

test-all: $(STAMP)  # the slow tests too (see docs/development.md for what the slow marker holds)
	$(PY) -m pytest -q -m "" test

# Newest versions setup.py allows, in a throwaway venv, frozen into constraints.txt (torch stays 2.13.0).
# Then run `make clean test` on them before committing the new constraints.txt.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[$(LOCK_EXTRAS)]"
	{ echo "# The versions the suite last passed with (pip constraints). Refresh: make lock && make clean test"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable \
		| sed -e 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > constraints.txt
	rm -rf $(LOCK_VENV)

demo: $(STAMP)
	$(VENV)/bin/spotvlm demo

lint: $(STAMP)
	$(VENV)/bin/ruff check spotvlm_ros launch test setup.py
	$(VENV)/bin/ruff format --check spotvlm_ros launch test setup.py

bench: $(STAMP)
	$(VENV)/bin/spotvlm bench all --out out/bench

# the docs site (MkDocs + Material) into out/site; --strict: a broken link, missing page or bad anchor fails
docs: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict --site-dir out/site

clean:
	rm -rf $(VENV) $(LOCK_VENV) out build install log .pytest_cache .ruff_cache
