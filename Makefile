# Hotline: the two commands a new user needs are `make run` and `make test`.
# Both bootstrap everything (virtualenv, Python and npm packages) on a fresh machine.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
ASSETS := app/static/vendor/.installed-$(shell sha1sum package-lock.json | cut -c1-12)

.PHONY: run test install lint bench bench-timers clean

run: install
	$(BIN)/python -m app.serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP) $(ASSETS)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Hotline needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf app/static/vendor && mkdir -p app/static/vendor/bpmn-js
	cp -r node_modules/bpmn-js/dist/assets node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js \
	      node_modules/bpmn-js/dist/bpmn-modeler.production.min.js app/static/vendor/bpmn-js/
	cp node_modules/htmx.org/dist/htmx.min.js app/static/vendor/
	mkdir -p app/static/vendor/camunda-bpmn-moddle  # Camunda Modeler's extension (tests/test_diagrams.py)
	cp node_modules/camunda-bpmn-moddle/resources/camunda.json app/static/vendor/camunda-bpmn-moddle/
	touch $@

lint: install
	$(BIN)/ruff check app workers telephony tests bench

bench: install
	$(BIN)/python -m bench.engine

bench-timers: install
	$(BIN)/python -m bench.timers

clean:
	rm -rf $(VENV) node_modules app/static/vendor .pytest_cache
