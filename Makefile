# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint migrate demo bench clean worker beat

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when the dependencies change.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --no-input

demo: migrate
	$(PY) manage.py load_demo

# Emailed links (password resets, connections, digests) follow the address served, unless SITE_URL says otherwise.
run: demo
	SITE_URL=$${SITE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py runserver $(HOST):$(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=nma_platform.settings.test $(PY) manage.py makemigrations --check --dry-run

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install
	$(PY) tests/benchmarks/run_all.py

worker: install
	$(VENV)/bin/celery -A nma_platform worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A nma_platform beat --loglevel=INFO

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache build *.egg-info
