# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test install lint format browser model clean-data

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned, so the CPU build is used where one is provided.
	$(VENV)/bin/pip install --quiet "torch==2.13.0"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

## Start the whole stack (embedded PostgreSQL + Redis unless DATABASE_URL / REDIS_URL are set).
run: install
	$(PY) -m companion.stack

## Run the whole test suite against real PostgreSQL, Redis, Celery workers and Chromium.
test: install browser
	$(PY) -m pytest

## Debian's Chromium drives the browser tests (Playwright uses it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
		else \
			echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; exit 1; \
		fi; }

## ruff, then mypy (pyproject.toml says what it checks and how strictly).
# mypy's Django plugin imports companion.settings, which starts the embedded PostgreSQL and Redis
# when DATABASE_URL / REDIS_URL are unset. Lint sets both to URLs that are only parsed, never
# connected to, and a secret key of its own, so it starts no server and writes nothing but var/mypy.
LINT_ENV := DATABASE_URL=postgres://lint@127.0.0.1:9/lint REDIS_URL=redis://127.0.0.1:9/0 \
	DJANGO_SECRET_KEY=lint-only-not-a-secret
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LINT_ENV) $(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Build the default generator model now (make run builds it on first start when missing).
model: install
	$(PY) -m companion.generator build --out var/models/default

clean-data:
	rm -rf var/
