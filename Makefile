# selfjwt.kyma: developer and CI entry points.
#
#   make test    every check below, creating what it needs first (.venv, node modules,
#                collections); a second run reinstalls nothing unless a lock file changed
#   make demo    run playbooks/demo.yml
#   make help    list the targets
#
# Needs python3 (3.11+, with venv), make, git, node and npm. The Debian packages of the
# hardware-key tests (bindep.txt) are installed by `make system-packages` (root or password-less
# sudo); everything else is installed into .venv, .cache and tests/interop/node_modules.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3

VENV := $(CURDIR)/.venv
VENV_STAMP := $(VENV)/.installed
CACHE := $(CURDIR)/.cache
NODE_DIR := tests/interop
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

# The same variables as scripts/env.sh, for every target.
export ANSIBLE_COLLECTIONS_PATH := $(CACHE)/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export SELFJWT_SHARED_DIR ?= $(abspath $(CURDIR)/../shared)
export PATH := $(VENV)/bin:$(PATH)

# Longest first, so that the two lanes of `make test` end at about the same time.
TEST_STAGES := system-a integration system-b units sanity interop lint docs-check build

header = @printf '\n==> %s [%s]\n' '$(1)' "$$(date +%T)"

.PHONY: help system-packages venv node collections test system $(TEST_STAGES) demo bench clean

help:
	@echo 'make test         all checks: $(TEST_STAGES)'
	@echo 'make demo         run playbooks/demo.yml (scripts/demo.sh); API=istio: Istio policies, not the APIRule'
	@echo 'make units        pytest tests/unit'
	@echo 'make integration  ansible-test integration over tests/integration/targets'
	@echo 'make interop      pytest tests/interop (Node.js jose, jsonwebtoken, jwks-rsa)'
	@echo 'make system       pytest tests/system (playbook-level tests; stages system-a and system-b)'
	@echo 'make sanity       ansible-test sanity on a staged copy of the collection'
	@echo 'make lint         ansible-lint, production profile'
	@echo 'make docs-check   ansible-doc renders every module and role'
	@echo 'make build        build the collection tarball into .cache/dist and check it'
	@echo 'make bench        python bench/run.py'
	@echo 'make system-packages   install the Debian packages of bindep.txt [platform:dpkg test] (SoftHSM2, software TPM)'
	@echo 'make venv | node | collections   set up .venv, node modules, .cache/collections'
	@echo 'make clean        remove everything the targets created'

# The tokens of the hardware-key tests (SoftHSM2, the software TPM stack) are Debian packages:
# the script checks them with one dpkg-query (well under a second) and installs what is missing.
system-packages:
	$(call header,system-packages: Debian packages of bindep.txt)
	@scripts/system-packages.sh

venv: $(VENV_STAMP)

# pip installs with --no-compile: Python writes bytecode on first import, for the modules
# actually used, which makes the install about twice as fast.
$(VENV_STAMP): requirements.txt tests/requirements.txt
	$(call header,venv: .venv from tests/requirements.txt)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "ERROR: $$($(PYTHON) --version 2>&1) is too old: ansible-core 2.19 needs Python 3.11 or newer (make PYTHON=python3.11 ...)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null \
	  || { echo "ERROR: $(PYTHON) cannot create virtualenvs. On Debian/Ubuntu run: apt-get install python3-venv" >&2; exit 1; }
	@if [ ! -x $(VENV)/bin/python ]; then \
	  $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "ERROR: '$(PYTHON) -m venv' failed. On Debian/Ubuntu run: apt-get install python3-venv" >&2; exit 1; }; \
	fi
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$$(grep -m1 '^pip==' tests/requirements.txt)"
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt -r tests/requirements.txt
	@$(VENV)/bin/python -m pip check --disable-pip-version-check
	@touch $@

node: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	$(call header,node: $(NODE_DIR)/node_modules from package-lock.json)
	@command -v npm >/dev/null \
	  || { echo "ERROR: npm not found. Install Node.js 20+ with npm (Debian/Ubuntu: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	@touch $@

collections: venv
	$(call header,collections: kubernetes.core and selfjwt.kyma in .cache/collections)
	@scripts/fetch-collections.sh

units: system-packages venv collections
	$(call header,units: pytest tests/unit)
	@scripts/run-pytest.sh tests/unit

integration: system-packages venv collections
	$(call header,integration: ansible-test integration)
	@scripts/ansible-test-offline.sh integration

interop: system-packages venv collections node
	$(call header,interop: pytest tests/interop)
	@scripts/run-pytest.sh tests/interop

# The playbook-level tests are the longest stage: `make test` runs them as two stages, so that
# they share the two lanes with the others. system-b holds the files listed here; system-a
# holds every other file in tests/system, so a new test file always runs somewhere.
SYSTEM_B := tests/system/test_kyma_manifests.py tests/system/test_kyma_apply.py \
            tests/system/test_fleet_scale.py tests/system/test_rotation.py \
            tests/system/test_callers.py tests/system/test_hardware_keys.py

system: system-a system-b

system-a: system-packages venv collections
	$(call header,system-a: pytest tests/system without system-b)
	@scripts/run-pytest.sh tests/system $(addprefix --ignore=,$(SYSTEM_B)) --durations=10

system-b: system-packages venv collections
	$(call header,system-b: pytest $(notdir $(SYSTEM_B)))
	@scripts/run-pytest.sh $(SYSTEM_B) --durations=10

sanity: venv collections
	$(call header,sanity: ansible-test sanity)
	@scripts/ansible-test-offline.sh sanity

lint: venv collections
	$(call header,lint: ansible-lint)
	ansible-lint

docs-check: venv collections
	$(call header,docs-check: ansible-doc)
	@scripts/docs-check.sh

build: venv
	$(call header,build: ansible-galaxy collection build)
	@scripts/build-collection.sh

# The stages run two at a time (TEST_JOBS): most of them are single-threaded (one pytest or
# one ansible-playbook after another), so two share two CPUs well. Each stage's output is
# printed in one piece when it ends; with --keep-going every stage runs and every failure shows.
TEST_JOBS ?= 2

test: system-packages venv collections node
	@start=$$(date +%s); \
	  $(MAKE) --jobs=$(TEST_JOBS) --output-sync=target --keep-going $(TEST_STAGES) \
	  || { echo "==> test: FAILED after $$(( $$(date +%s) - start )) s (see the stages above)" >&2; exit 1; }; \
	  echo "==> test: all stages passed in $$(( $$(date +%s) - start )) s ($(TEST_STAGES))"

demo: venv collections
	$(call header,demo: playbooks/demo.yml)
	@scripts/demo.sh $(if $(API),-e kyma_publish_api=$(API))

bench: system-packages venv collections
	$(call header,bench: bench/run.py)
	@if [ ! -f bench/run.py ]; then echo "ERROR: bench/run.py does not exist yet, so there is no benchmark to run" >&2; exit 1; fi
	python bench/run.py

clean:
	rm -rf .venv .cache .ansible tests/output tests/integration/inventory $(NODE_DIR)/node_modules \
	  .pytest_cache .hypothesis demo-out
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
