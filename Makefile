# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint migrate demo bench clean worker beat require-broker

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
# Served beyond this machine (HOST=0.0.0.0), it answers any host name unless ALLOWED_HOSTS says otherwise; the
# links then need SITE_URL, the address others reach it by (0.0.0.0 is none).
run: demo
	@case "$(HOST)" in 127.0.0.1|localhost|::1) ;; \
	  *) export ALLOWED_HOSTS="$${ALLOWED_HOSTS:-*}"; \
	     [ -n "$$SITE_URL" ] || echo "Served on $(HOST): set SITE_URL=http://<this machine's address>:$(PORT) for emailed links.";; \
	esac; \
	SITE_URL=$${SITE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py runserver $(HOST):$(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=nma_platform.settings.test $(PY) manage.py makemigrations --check --dry-run

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install
	$(PY) tests/benchmarks/run_all.py $(if $(DATA),--data "$(DATA)")

# A worker and beat need the broker the site uses: without REDIS_URL, `make run` runs tasks in its own process and
# a worker would wait on an in-memory broker nobody else can reach.
require-broker:
	@[ -n "$$REDIS_URL" ] || { echo "Set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0 make $(MAKECMDGOALS)), the broker the site uses too: without it tasks run inside the site's own process."; exit 2; }

worker: install require-broker
	$(VENV)/bin/celery -A nma_platform worker --loglevel=INFO

# Beat's schedule file (when each periodic task last ran) in var/, out of the source tree.
beat: install require-broker
	mkdir -p var
	$(VENV)/bin/celery -A nma_platform beat --loglevel=INFO --schedule var/celerybeat-schedule

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles var .pytest_cache .ruff_cache build *.egg-info
