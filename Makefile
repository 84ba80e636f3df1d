# Build, demo and test metaflow-kfp. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
NODE_DEPS   := node_modules/.package-lock.json
AGENT       := dist/metaflow-kfp
AGENT_SRC   := $(shell find agent -name '*.ts') scripts/build.mjs scripts/lazy-modules.mjs scripts/code-cache-loader.mjs scripts/warm-python-loader.mjs agent/step/warm-python.py image/runtime-pin.txt package.json

.PHONY: argo-cli kfp1-venv help deps build demo test typecheck bench clean image image-lock image-test e2e e2e-up e2e-down

help:
	@echo "make demo   run the seed's foreach flow through its KFP v2 template with run-local (local datastore)"
	@echo "make test   run every test suite"
	@echo "make build  bundle the agent into $(AGENT)"
	@echo "make bench  measure the design budgets against the alternatives"
	@echo "make image  build the container image with docker or podman (IMAGE=name:tag BASE_IMAGE=...)"
	@echo "make image-test  build the image with podman on a debootstrap base and run steps in it"
	@echo "make e2e    run the Argo templates on a real single-node Kubernetes with Argo Workflows (root; make e2e-up / e2e-down)"

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

# A second venv for the KFP 1.x (v1beta1) stand-in and its check with the kfp 1.8 SDK: kfp 1.8 and its
# kfp-server-api 1.8 cannot live beside kfp 2 in .venv. Made once, again only when its requirements change.
VENV_KFP1   := .venv-kfp1
$(VENV_KFP1)/.installed: test/kfp-api/requirements-kfp1.txt
	test -x $(VENV_KFP1)/bin/python || python3 -m venv $(VENV_KFP1)
	$(VENV_KFP1)/bin/python -m pip install --quiet --disable-pip-version-check -r test/kfp-api/requirements-kfp1.txt
	@touch $@

kfp1-venv: $(VENV_KFP1)/.installed

$(AGENT): $(NODE_DEPS) $(AGENT_SRC)
	node scripts/build.mjs

build: $(AGENT)

# The seed's foreach flow through its KFP v2 template, run on this machine by `metaflow-kfp run-local`.
demo: deps build
	@mkdir -p .demo
	@set -o pipefail; $(AGENT) run-local pipeline-templates/foreach_flow.kfp.yaml \
	  --code-url file://$(CURDIR)/pipeline-templates/flows/foreach_flow.py \
	  --python $(CURDIR)/$(PY) --datastore-root $(CURDIR)/.demo/.metaflow | tee .demo/last-run.txt
	@run=$$(awk '/^Metaflow run: /{print $$3}' .demo/last-run.txt); \
	  METAFLOW_DATASTORE_SYSROOT_LOCAL=$(CURDIR)/.demo METAFLOW_USER=demo $(PY) -c \
	  "import sys; from metaflow import Run, namespace; namespace(None); r = Run(sys.argv[1]); print('Metaflow says: %s successful=%s results=%s' % (r.pathspec, r.successful, r.data.results))" "$$run"

# Argo's own CLI for `argo lint --offline --strict` in the tests; built from the Go module proxy once per machine (minutes).
ARGO_VERSION := v4.0.5
ARGO_CLI     := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/metaflow-kfp/bin/argo-$(ARGO_VERSION)

$(ARGO_CLI):
	ARGO_VERSION=$(ARGO_VERSION) scripts/build-argo-cli.sh $@

argo-cli: $(ARGO_CLI)

typecheck: $(NODE_DEPS)
	npx tsc --noEmit

# Every suite: the vitest suites, then the container suite where podman can run containers here.
test: deps build typecheck $(ARGO_CLI) $(VENV_KFP1)/.installed
	ARGO_CLI=$(ARGO_CLI) npx vitest run
	@if reason=$$(scripts/can-run-containers.sh); then $(MAKE) --no-print-directory image-test; \
	  else echo "make test: skipping the container suite (make image-test): $$reason"; fi
	@if reason=$$(scripts/e2e/can-run.sh); then $(MAKE) --no-print-directory e2e; \
	  else echo "make test: skipping the e2e suite (make e2e): $$reason"; fi

# The goals of issue 12 as ratios measured in one run, written into the README (a few minutes; BENCH_ONLY=section runs one, BENCH_10GB=1 adds the 10 GB row).
bench: deps build
	node scripts/bench/run.mjs

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

# A real single-node Kubernetes 1.35 and Argo Workflows as host processes under .cache/e2e (root, Linux).
# Builds them from the Go module proxy once per machine (about 10 minutes), then starts in seconds.
# E2E_KEEP=1 make e2e leaves the cluster up; make e2e-down stops it and removes what it created.
e2e: deps build $(ARGO_CLI)
	ARGO_CLI=$(ARGO_CLI) scripts/e2e/run.sh

e2e-up: deps build $(ARGO_CLI)
	scripts/e2e/up.sh
	scripts/e2e/images.sh agent

e2e-down:
	scripts/e2e/down.sh

clean:
	rm -rf dist node_modules $(VENV)
