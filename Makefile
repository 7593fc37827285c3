# Everything a fresh machine needs, from Python and make alone.
#   make run    set up (virtualenv, dependencies, database, admin login) and start the product
#   make test   lint (ruff, mypy), then the test suite on SQLite, then on PostgreSQL (required under CI=true)
#               (browser tests included: they drive Debian's chromium, installed if missing)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run setup venv lint test test-sqlite test-postgres check-migrations clean bench browser-deps screenshots messages

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.env: .env.example
	@if [ ! -f .env ]; then \
		sed "s/^SECRET_KEY=.*/SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(40))')/" .env.example > .env; \
		echo "Created .env (development settings) from .env.example"; \
	fi

setup: venv .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin

run: setup
	@echo "Admin: http://$(HOST):$(PORT)/admin/   (stop with Ctrl+C)"
	HOST=$(HOST) PORT=$(PORT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

check-migrations: venv
	SECRET_KEY=check $(PY) manage.py makemigrations --check --dry-run

test: lint test-sqlite test-postgres

# ruff (lint + black-style format check) over the code, then mypy over scheduler_app/
# with the Django and DRF plugins; settings for both in pyproject.toml. mypy needs no
# database or environment (its Django settings are config.settings_test).
LINTED := scheduler_app tests bench config scripts manage.py
lint: venv
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

test-sqlite: venv check-migrations browser-deps
	$(PY) -m pytest

test-postgres: venv browser-deps
	@if $(PY) -c "import psycopg; psycopg.connect('$(PG_TEST_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== PostgreSQL pass: $(PG_TEST_URL)"; \
		DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest; \
	elif [ "$$CI" = "true" ]; then \
		echo "CI=true but PostgreSQL at $(PG_TEST_URL) does not answer: the PostgreSQL tests must run in CI." >&2; \
		exit 1; \
	else \
		echo "PostgreSQL not reachable at $(PG_TEST_URL): skipping the PostgreSQL pass (CI runs it)."; \
	fi

# The browser tests (tests/browser) drive Debian's chromium through Playwright,
# which never downloads a browser. CI runs as root on Debian; elsewhere sudo is used.
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "== Installing chromium for the browser tests (apt-get)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

# Refresh docs/screenshots/ from the browser tests (a CJK font for the Chinese one).
screenshots: venv browser-deps
	@if ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get install -y fonts-wqy-microhei; \
	fi
	SCREENSHOTS=1 $(PY) -m pytest tests/browser -p no:cacheprovider

# Update the Chinese catalog after changing translatable strings, translate the new
# entries in locale/zh_Hans/LC_MESSAGES/django.po, then compile (commit both files).
messages: venv
	SECRET_KEY=messages $(PY) manage.py makemessages -l zh_Hans --no-obsolete
	SECRET_KEY=messages $(PY) manage.py compilemessages -l zh_Hans --ignore=$(VENV)

# Benchmarks (bench/README.md): several minutes, never part of make test.
#   make bench BENCH_ARGS="--duration 10"   a quick pass
bench: venv
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
