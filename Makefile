# Hookwarden: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

.PHONY: help demo test bench soak tools cluster-up cluster-down crds docs fmt lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: ## set up and run the main job end to end (NATS JetStream + endpoint)
	@tests/tools/demo.sh

test: ## set up everything and pass every check and test
	@tests/tools/test.sh

bench: ## load benchmark: receiver vs bare server, nats bench and the peer (~10 min; BENCH_QUICK=1 ~2 min); report in target/bench/report.md
	@bench/run.sh

soak: ## long versions of the resilience tests (NATS and receiver killed again and again, a spray from 120k addresses; SOAK_SCALE=60, ~5 min)
	@bench/soak.sh

tools: ## build the pinned upstream tools into ~/.cache/hookwarden/bin
	@tests/tools/deps.sh
	@tests/tools/install.sh

cluster-up: tools ## start the local control plane (etcd, apiserver, controllers, scheduler, kwok)
	@tests/tools/cluster.sh up

cluster-down: ## stop everything cluster-up started
	@tests/tools/cluster.sh down

docs: ## regenerate docs/providers.md's preset table from the preset registry
	table="$$(cargo run --quiet -p hookwarden-cli -- presets --markdown)" && \
	  awk -v table="$$table" '/<!-- presets:end -->/ { skip = 0 } !skip { print } /<!-- presets:begin -->/ { print table; skip = 1 }' \
	    docs/providers.md > docs/providers.md.new && mv docs/providers.md.new docs/providers.md

crds: ## regenerate crds/*.yaml from the Rust types, and the chart's copies
	cargo run --quiet -p hookwarden-crds --bin crdgen endpoint > crds/webhookendpoint.yaml
	cargo run --quiet -p hookwarden-crds --bin crdgen subscription > crds/webhooksubscription.yaml
	cargo run --quiet -p hookwarden-crds --bin crdgen pool > crds/webhookreceiverpool.yaml
	cp crds/webhookendpoint.yaml crds/webhooksubscription.yaml crds/webhookreceiverpool.yaml charts/hookwarden/crds/

fmt: ## format the code
	cargo fmt --all

lint: ## formatting, clippy, the dependency layout and module cycles, as CI checks them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	tests/tools/deps-check.sh
	CARGO_TARGET_DIR=$${HOOKWARDEN_CACHE:-$$HOME/.cache/hookwarden}/fuzz/check-target \
	  cargo clippy --manifest-path receiver/fuzz/Cargo.toml --all-targets --locked -- -D warnings
	python3 tests/tools/module-cycles.py --self-test
	python3 tests/tools/module-cycles.py
