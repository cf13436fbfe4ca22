# sfrelay: common tasks. `make test` is the one test command (README, CI).
CARGO ?= cargo

.PHONY: run test lint fmt build release demo demo-people emulator clean image k8s-config k8s-render k8s-validate bench bench-smoke

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

## The whole path on one machine (scripts/demo.sh): redis-server, the Slack and Salesforce
## emulators and sfrelay; a Closed Won callout and the message Slack received, then a click on
## an escalated Case's "Take it", the write Salesforce received and the card redrawn.
demo: build
	@scripts/demo.sh

## The Slack surfaces against the emulators (scripts/demo-people.sh): two orgs connected, a
## Preferred org, /sf find, an unfurl, a followed deal's DM and the Home tab with both orgs' health.
demo-people: build
	@scripts/demo-people.sh

## Benchmarks (bench/README.md): every measurement, 3 runs, medians; prints a table and
## writes bench/results.json. Targets are reported, never enforced. The harness is built in a
## cargo run of its own so its dependencies' features never change how sfrelay is built; it
## finds sfrelay and the emulator beside itself, in target/release.
bench:
	$(CARGO) build --release --bins -p sfrelay -p sfrelay-emulator
	$(CARGO) build --release -p sfrelay-bench
	target/release/sfrelay-bench run $(BENCH_ARGS)

## The same at a tiny scale (1 run, 2 s phases, 100 messages over 10 channels, 5 clicks, a
## backlog of 200 changes on the Pub/Sub stream, 20 enriched events, a storm of 14 posts over 7
## channels), for CI: on the test build in target/debug (no release build needed), proving the
## harness runs; its figures mean nothing.
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
