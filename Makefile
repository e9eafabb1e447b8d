# EWC Server — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
comma := ,
EXTRAS ?= cpu,local,dev
# Re-install only when the project's requirements change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)-$(subst $(comma),_,$(EXTRAS))

.PHONY: install run test test-fast lint faults bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the whole local service: API + worker + embedded broker + SQLite.
run: install
	$(VENV)/bin/ewc up

## Install what the tests need, check the layering, run every test.
test: install lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

## The quick tests only (no science checks, no end-to-end).
test-fast: install
	$(PY) -m pytest -q -m "not slow and not e2e and not browser and not faults" $(PYTEST_ARGS)

## The fault tests only (kill workers, restart Redis, stop PostgreSQL, 200 jobs, fuzzing,
## the auth matrix); `make test` runs them too.
faults: install
	$(PY) -m pytest -q -m faults tests/faults $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/core_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
