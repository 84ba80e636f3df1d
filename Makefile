# Build, demo and test metaflow-kfp. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
NODE_DEPS   := node_modules/.package-lock.json
AGENT       := dist/metaflow-kfp
AGENT_SRC   := $(wildcard agent/*.ts) scripts/build.mjs image/runtime-pin.txt package.json

.PHONY: help deps build demo test test-unit typecheck clean image image-lock image-test

help:
	@echo "make demo   run the seed's foreach flow task by task through the agent (local datastore)"
	@echo "make test   run every test suite"
	@echo "make build  bundle the agent into $(AGENT)"
	@echo "make image  build the container image with docker or podman (IMAGE=name:tag BASE_IMAGE=...)"
	@echo "make image-test  build the image with podman on a debootstrap base and run steps in it"

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

# The container image. IMAGE names it; BASE_IMAGE and NODE_IMAGE, when set, replace the Dockerfile's defaults.
IMAGE       ?= metaflow-kfp:$(shell node -p 'require("./package.json").version' 2>/dev/null || echo dev)
BASE_IMAGE  ?=
NODE_IMAGE  ?=

image: $(AGENT) $(VENV)/.installed
	scripts/image-context.sh
	IMAGE='$(IMAGE)' BASE_IMAGE='$(BASE_IMAGE)' NODE_IMAGE='$(NODE_IMAGE)' scripts/image-build.sh

# Re-resolves image/requirements.txt (with hashes) after image/runtime-pin.txt or image/requirements.in changed.
image-lock: $(VENV)/.installed
	scripts/image-requirements.sh lock

# Installs podman, runc and debootstrap when missing (root, apt); about 2 minutes the first time on a machine.
image-test: deps build
	scripts/image-test.sh

clean:
	rm -rf dist node_modules $(VENV)
