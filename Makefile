# Build, demo and test metaflow-kfp. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
NODE_DEPS   := node_modules/.package-lock.json
AGENT       := dist/metaflow-kfp
AGENT_SRC   := $(wildcard agent/*.ts) scripts/build.mjs image/runtime-pin.txt package.json

.PHONY: help deps build demo test test-unit typecheck clean

help:
	@echo "make demo   run the seed's foreach flow task by task through the agent (local datastore)"
	@echo "make test   run every test suite"
	@echo "make build  bundle the agent into $(AGENT)"

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The project's Python: the pinned Metaflow and the test tools, all from PyPI.
$(VENV)/.installed: image/runtime-pin.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r image/runtime-pin.txt -r requirements-dev.txt
	@touch $@

deps: $(NODE_DEPS) $(VENV)/.installed

$(AGENT): $(NODE_DEPS) $(AGENT_SRC)
	node scripts/build.mjs

build: $(AGENT)

demo: deps build
	node scripts/demo.mjs

typecheck: $(NODE_DEPS)
	npx tsc --noEmit

test: deps build typecheck
	npx vitest run

clean:
	rm -rf dist node_modules $(VENV)
