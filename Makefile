# costapp: `make demo` runs the app on a populated demo; `make test` installs and runs every test.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/costapp
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test venv deps dev-deps system-deps lint typecheck django-checks pytest bench serve

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

dev-deps: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt

## demo: venv, install, migrate, seed 30 days, demo logins, serve on http://127.0.0.1:8000
demo: deps
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --days 30
	@echo "costapp is at http://127.0.0.1:8000 (log in with a demo login above)"
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:8000

## system-deps: Debian packages the tests drive (Chromium, docker-compose v1, wrk)
system-deps:
	@command -v chromium >/dev/null && command -v docker-compose >/dev/null && command -v wrk >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose wrk >/dev/null)

lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check allocation

typecheck: dev-deps
	$(BIN)/mypy --strict allocation

django-checks: dev-deps
	DATABASE_URL=$(PG_URL) $(BIN)/python manage.py check
	DATABASE_URL=$(PG_URL) $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(PG_URL) $(BIN)/python manage.py migrate --noinput
	SECRET_KEY=compose-check docker-compose -f docker-compose.yml config -q

pytest: dev-deps
	DATABASE_URL=$(PG_URL) COSTAPP_TEST_REDIS_URL=$(REDIS_TEST_URL) $(BIN)/pytest -n 2

## test: install everything and run lint, type checks, Django checks and the whole suite
test: system-deps dev-deps lint typecheck django-checks pytest

## bench: the benchmarks (engine, sampling, billing import, API; bench_load: gunicorn under wrk)
bench: dev-deps
	$(BIN)/python -m allocation bench
	DATABASE_URL=$(PG_URL) $(BIN)/python manage.py bench_sample
	DATABASE_URL=$(PG_URL) $(BIN)/python manage.py bench_load
