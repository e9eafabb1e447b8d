# EWC Server — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
comma := ,
EXTRAS ?= cpu,local,dev
# pytest-xdist workers for `make test` (TEST_JOBS=0 runs in one process); 2 suits this
# 2-core machine: most tests wait on servers and worker processes, not on the CPU.
TEST_JOBS ?= 2
# Every installed version comes from the lock (requirements/lock-dev.txt, refreshed by
# `make lock`). Re-install only when the project's requirements or the lock change.
LOCK := requirements/lock-dev.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)-$(subst $(comma),_,$(EXTRAS))

.PHONY: install run test test-fast lint faults bench clean lock

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the whole local service: API + worker + embedded broker + SQLite.
run: install
	$(VENV)/bin/ewc up

## Install what the tests need, check the layering, run every test.
test: install lint
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal $(PYTEST_ARGS)

## The quick tests only (no science checks, no end-to-end).
test-fast: install
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal -m "not slow and not e2e and not browser and not faults and not docker" $(PYTEST_ARGS)

## The fault tests only (kill workers, restart Redis, stop PostgreSQL, 200 jobs, fuzzing,
## the auth matrix); `make test` runs them too.
faults: install
	$(PY) -m pytest -q -m faults tests/faults $(PYTEST_ARGS)

## The floors (import-linter contracts) and ruff.
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/core_speed.py

## Refresh the lock files (requirements/lock-{api,cpu,dev}.txt, used by `make install`
## and the images) to the newest releases pyproject.toml allows, then run `make test`.
lock: | $(PY)
	$(PY) -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[cpu,local,dev]'
	$(PY) requirements/lock.py
	rm -f $(VENV)/.installed-*

clean:
	rm -rf $(VENV) .pytest_cache
