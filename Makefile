# mailgrant: `make run` serves on SQLite, `make test` runs the whole suite. Both set up .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Serving needs the package alone; the tests and checks add the development extras.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export MAILGRANT_LISTEN ?= 127.0.0.1:8000

.PHONY: run test check bench demo install peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/mailgrant migrate --noinput
	@echo
	@echo "  First admin:  $(BIN)/mailgrant createsuperuser"
	@echo "  (or unattended: DJANGO_SUPERUSER_PASSWORD=... $(BIN)/mailgrant createsuperuser --noinput --username admin --email admin@example.com)"
	@echo "  Then open http://$(MAILGRANT_LISTEN)/admin/"
	@echo
	$(BIN)/mailgrant serve

# The tests' real peers: oidc-provider (npm, pinned by tests/servers/oidc/package-lock.json)
# and Debian's Chromium (apt, when missing and run as root).
peers:
	bash tests/servers/install-peers.sh

# One pytest process per core (pytest-xdist); PYTEST_ARGS="-n 0" runs them in this one.
test: $(DEV_STAMP) peers
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

# The whole product with the test peers (oidc-provider, Dovecot) under ./var/demo: demo/run.py.
demo: $(DEV_STAMP) peers
	$(BIN)/python -m demo.run

check: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench demo
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(DEV_STAMP) peers
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/[!_]*.py; do $(BIN)/python $$b || exit 1; done || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
