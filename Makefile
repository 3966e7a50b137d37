# One venv for the whole workspace: the kernel and every plugin, editable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(wildcard plugins/*)
CODE := kernel plugins tests bench
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

$(STAMP): pyproject.toml kernel/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Alopex needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e kernel $(addprefix -e ,$(PLUGINS)) -e '.[all,dev]'
	touch $@

install: $(STAMP)

demo: install  ## the main job: a tour of an embedded database in ./alopex-demo.db
	$(VENV)/bin/alopex demo alopex-demo.db

test: install  ## the whole test suite
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix $(CODE)
	$(VENV)/bin/ruff format $(CODE)

bench: install  ## benchmarks against peers (prints tables; not part of the tests)
	$(PY) bench/kv.py
	$(PY) bench/sql.py
	$(PY) bench/vector.py

clean:
	rm -rf $(VENV) alopex-demo.db
