# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make demo   creates .venv, installs, seeds the embedded demo and opens the console chat, in the
#               language of LANG (zh_CN..., en_...; `make demo LANG=en_US.UTF-8`), or asks which
#   make test   creates .venv, installs the dev extras, runs ruff, mypy and pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format clean constraints

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "unlockbot needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Every install takes its versions from constraints.txt, so CI and every machine run what was tested.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@ $(VENV)/.installed

# The chat's language comes from LANG (or LC_ALL / LC_MESSAGES), which make passes on; otherwise it asks.
demo: $(VENV)/.installed
	$(BIN)/unlockbot demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n auto --dist loadfile

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Refresh constraints.txt on purpose: what pyproject.toml resolves to today, in a venv of its own so
# nothing installed by hand slips in. Run make test on the result before committing it.
FRESH := .venv-constraints
constraints:
	rm -rf $(FRESH)
	$(PYTHON) -m venv $(FRESH)
	$(FRESH)/bin/python -m pip install --quiet --upgrade pip
	$(FRESH)/bin/python -m pip install --quiet -e '.[dev]'
	@printf '%s\n' '# Exact versions CI and `make` install with (pip install -c constraints.txt ...).' \
		'# Refresh on purpose, never by hand-editing one line: see "Dependencies" in CONTRIBUTING.md.' > constraints.txt
	$(FRESH)/bin/python -m pip freeze --all --exclude-editable >> constraints.txt
	rm -rf $(FRESH)

clean:
	rm -rf $(VENV) .unlockbot .pytest_cache .mypy_cache .ruff_cache
