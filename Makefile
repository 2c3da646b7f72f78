# Loupe: the single entry point. `make up` starts the whole local stack, `make test` runs
# every test tier against real PostgreSQL, MinIO, Kafka and TorchServe started for the run.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/services/common:$(CURDIR)/services/gateway:$(CURDIR)/services/metadata:$(CURDIR)/services/storage:$(CURDIR)/services/training:$(CURDIR)/services/prediction:$(CURDIR)/deploy/local:$(CURDIR)/deploy/k8s
PROTOS := $(wildcard protos/loupe/v1/*.proto)

.PHONY: help deps lock up down status logs test test-unit protos bench bench-live bench-predict bench-iterations bench-upload load chart-check clean k8s-up k8s-down k8s-status test-k8s

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The venv is keyed on the lock file so a changed pin reinstalls. requirements.lock pins every
# transitive dependency with its hashes (made by `make lock` from requirements*.txt).
$(VENV)/.installed: requirements.lock
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --require-hashes -r requirements.lock
	touch $@

# pip-tools runs in a throwaway venv, never the project's. pip-compile keeps every pin already in
# requirements.lock, so regenerating after a change to requirements*.txt moves only what changed.
PIP_TOOLS := pip-tools==7.7.0
lock: ## regenerate requirements.lock (all transitive pins, with hashes) from requirements*.txt
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PY) -m venv "$$tmp/venv" && "$$tmp/venv/bin/pip" install -q $(PIP_TOOLS) && \
	CUSTOM_COMPILE_COMMAND="make lock" "$$tmp/venv/bin/pip-compile" -q --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock requirements-dev.txt

deps: $(VENV)/.installed ## install system packages, Python deps, MinIO, Kafka jars, the model archive
	$(VPY) -m loupe_stack install

up: deps ## start the whole system (data under .loupe/), print the address and keys
	$(VPY) -m loupe_stack up

down: ## stop the local system (data is kept)
	@test -x $(VPY) && $(VPY) -m loupe_stack down || true

status: ## show each process of the local system
	$(VPY) -m loupe_stack status

logs: ## show where the logs are
	$(VPY) -m loupe_stack logs

test: deps ## the whole suite: unit, service and end-to-end tests
	$(VPY) -m pytest -q

test-unit: $(VENV)/.installed ## only the fast tests without I/O
	$(VPY) -m pytest -q -m unit

# Generated code is checked in; protos-check (run by the test suite) fails when it is stale.
protos: $(VENV)/.installed ## regenerate Python code from protos/
	rm -rf services/common/loupe/v1
	mkdir -p services/common/loupe/v1
	$(VPY) -m grpc_tools.protoc -Iprotos --python_out=services/common --pyi_out=services/common \
		--grpc_python_out=services/common $(PROTOS)
	touch services/common/loupe/__init__.py services/common/loupe/v1/__init__.py

bench: deps ## few-shot accuracy/speed benchmark through the training core (not part of make test)
	$(VPY) bench/fewshot.py

bench-live: ## training and prediction latency through the real services of a running `make up`
	$(VPY) bench/train_latency.py

bench-predict: ## classify speed of a running `make up`: model-only ceiling, REST and the gRPC stream at concurrency 1, 4, 16, CPU per process
	$(VPY) bench/predict.py

bench-iterations: ## 1,000 published iterations on a running `make up`: prediction's memory, first (head not cached) vs cached prediction latency
	$(VPY) bench/published_iterations.py

bench-upload: ## gateway peak RSS growth of a 64 x 6 MB upload batch against its body size, on a stack of its own (port 26600 up)
	$(VPY) bench/upload_memory.py

LOAD_DURATION ?= 600
load: ## soak a running `make up` with locust: 3 accounts of mixed traffic for LOAD_DURATION s (600); p50/p95, answers by status, memory slopes
	$(VPY) bench/soak.py --duration $(LOAD_DURATION)

clean: down ## remove the local data folder (all local data!) and the venv
	rm -rf .loupe $(VENV)

# The cluster is built once into the Loupe cache (Kubernetes from the Go module proxy: about 15 min
# cold on 2 cores); later runs reuse it and only rebuild images whose inputs changed.
k8s-up: deps ## a single-node Kubernetes on this machine with Loupe's chart installed; writes .loupe/k8s/env
	$(VPY) -m loupe_cluster up

k8s-down: ## stop the Kubernetes cluster (data is kept in .loupe/k8s)
	@test -x $(VPY) && $(VPY) -m loupe_cluster down || true

test-k8s: deps ## the k8s tier: builds (first run) and starts the cluster, then tests Loupe on it
	$(VPY) -m pytest -q -m k8s tests/k8s

k8s-status: ## the cluster's processes and Loupe's pods
	$(VPY) -m loupe_cluster status

chart-check: ## lint, render and validate the Helm chart offline (builds helm with go install once)
	bash deploy/helm/check.sh
