# Two commands matter: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
# torch first, pinned to the CPU wheel this machine carries, so nothing pulls a CUDA build.
TORCH   = torch==2.13.0

.PHONY: test demo bench install clean docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[demo]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(PIP) install -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed-test

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed-demo
	$(VENV)/bin/runlock demo demo-out

bench: $(VENV)/.installed-bench
	@echo "Each benchmark prints its own ratios; see docs/benchmarks.md for the commands."

docs: $(VENV)/.installed-test
	$(PY) -m typer runlock.cli.main utils docs --name runlock --title "runlock CLI reference" --output docs/cli.md

clean:
	rm -rf $(VENV) demo-out .pytest_cache
