# SpotVLM developer commands. `make test` and `make demo` create .venv on first use.
# torch==2.13.0 (CPU) is installed first and pinned through constraints.txt, so nothing pulls a newer
# (CUDA) torch afterwards.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.spotvlm-installed
EXTRAS ?= ml,viz,test

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q test

demo: $(STAMP)
	$(VENV)/bin/spotvlm demo

lint: $(STAMP)
	$(VENV)/bin/ruff check spotvlm_ros launch test setup.py
	$(VENV)/bin/ruff format --check spotvlm_ros launch test setup.py

bench: $(STAMP)
	$(VENV)/bin/spotvlm bench all --out out/bench

clean:
	rm -rf $(VENV) out build install log .pytest_cache .ruff_cache
