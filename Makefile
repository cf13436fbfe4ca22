# sfrelay: common tasks. `make test` is the one test command (README, CI).
CARGO ?= cargo

.PHONY: run test lint fmt build release demo emulator clean image k8s-config k8s-render k8s-validate bench bench-smoke

## Run sfrelay on its embedded defaults (in-process queue, Slack messages logged).
run:
	$(CARGO) run --bin sfrelay -- serve

## The whole test suite of every workspace member (sfrelay, the emulators, the bench harness):
## unit tests and integration tests (spawns redis-server on free ports; the emulators run inside
## the test processes). Installs redis-server first when it is missing and it can (root or
## password-less sudo with apt-get), else says in one line what to install.
test:
	@scripts/ensure-redis.sh
	$(CARGO) test --workspace --all-targets

## Formatting and lints, as CI runs them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## sfrelay and the emulator binary (test build), as `make demo` runs them.
build:
	$(CARGO) build --bins -p sfrelay -p sfrelay-emulator

## sfrelay's release binary, the one the image ships.
release:
	$(CARGO) build --release --bins -p sfrelay

## The Slack Web API emulator on its own (loopback).
emulator:
	$(CARGO) run -p sfrelay-emulator -- slack --listen 127.0.0.1:3001

## The whole path on one machine: redis-server, the Slack emulator and sfrelay, then one
## Closed Won callout and the message the emulated Slack received.
DEMO_REDIS_PORT ?= 6399
DEMO_SLACK_PORT ?= 3001
DEMO_PORT ?= 8080
demo: build
	@set -eu; dir=$$(mktemp -d); pids=""; \
	trap 'kill $$pids 2>/dev/null; rm -rf "$$dir"' EXIT; \
	redis-server --port $(DEMO_REDIS_PORT) --bind 127.0.0.1 --save "" --appendonly no --dir "$$dir" >/dev/null & pids="$$pids $$!"; \
	./target/debug/sfrelay-emulator slack --listen 127.0.0.1:$(DEMO_SLACK_PORT) >"$$dir/emulator.out" 2>/dev/null & pids="$$pids $$!"; \
	REDIS_URL=redis://127.0.0.1:$(DEMO_REDIS_PORT) SLACK_API_BASE=http://127.0.0.1:$(DEMO_SLACK_PORT)/api \
	  SLACK_BOT_TOKEN=xoxb-test-token SFRELAY_LISTEN=127.0.0.1:$(DEMO_PORT) \
	  ./target/debug/sfrelay serve --config sfrelay.toml 2>"$$dir/sfrelay.log" & pids="$$pids $$!"; \
	for i in $$(seq 100); do curl -sf localhost:$(DEMO_PORT)/readyz >/dev/null && break; sleep 0.1; done; \
	echo "== POST /v1/events (tests/fixtures/flow-opportunity-closed-won.json)"; \
	curl -s -X POST localhost:$(DEMO_PORT)/v1/events -H 'Content-Type: application/json' \
	  --data @tests/fixtures/flow-opportunity-closed-won.json; echo; \
	for i in $$(seq 50); do [ "$$(curl -s localhost:$(DEMO_SLACK_PORT)/_emulator/messages)" != "[]" ] && break; sleep 0.1; done; \
	echo "== what Slack received (GET /_emulator/messages)"; \
	curl -s localhost:$(DEMO_SLACK_PORT)/_emulator/messages; echo

## Benchmarks (bench/README.md): every measurement, 3 runs, medians; prints a table and
## writes bench/results.json. Targets are reported, never enforced. The harness is built in a
## cargo run of its own so its dependencies' features never change how sfrelay is built; it
## finds sfrelay and the emulator beside itself, in target/release.
bench:
	$(CARGO) build --release --bins -p sfrelay -p sfrelay-emulator
	$(CARGO) build --release -p sfrelay-bench
	target/release/sfrelay-bench run $(BENCH_ARGS)

## The same at a tiny scale (1 run, 2 s phases, 100 messages over 10 channels, 5 clicks), for
## CI: on the test build in target/debug (no release build needed), proving the harness runs;
## its figures mean nothing.
bench-smoke:
	$(CARGO) build --bins -p sfrelay -p sfrelay-emulator
	$(CARGO) build -p sfrelay-bench
	target/debug/sfrelay-bench run --smoke $(BENCH_ARGS)

IMAGE ?= registry.example.com/sfrelay:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
OVERLAY ?= prod

## Container image (needs a Docker engine with BuildKit).
image:
	docker build -t $(IMAGE) .

## Copy routes/ and templates/ into k8s/base/generated with the kustomization that lists them
## (kustomize reads only inside k8s/ and cannot glob). Run after changing either; commit the result.
k8s-config:
	scripts/k8s-config.sh

## Render a kustomize overlay (OVERLAY=dev|prod) as `kubectl apply -k` would.
k8s-render:
	kubectl kustomize k8s/overlays/$(OVERLAY)

## Validate k8s/, Dockerfile and deploy/ offline (installs its tools on first use); fails when
## k8s/base/generated is stale.
k8s-validate:
	scripts/validate-deploy.sh

clean:
	$(CARGO) clean
