# syntax=docker/dockerfile:1
#
# sfrelay container image: a glibc release build on Debian 12 (bookworm), run on distroless
# cc-debian12 (glibc, libgcc, CA certificates; no shell, no package manager) as the non-root
# user 65532.
#
#   docker build -t registry.example.com/sfrelay:0.1.0 .
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

# Keep in step with `rust-version` in Cargo.toml (edition 2024 needs at least 1.85).
ARG RUST_VERSION=1.88

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Cargo loads the whole workspace before building one package, so the other members' manifests
# must be here too; their code (the emulators, the bench harness) is never built into the image,
# so empty files stand in for it.
COPY emulator/Cargo.toml ./emulator/
COPY bench/Cargo.toml ./bench/
RUN mkdir -p emulator/src bench/src \
 && touch emulator/src/lib.rs emulator/src/main.rs bench/src/main.rs
COPY src ./src
# The release profile keeps line tables (82 MB binary); the image drops them (about 19 MB) but
# keeps symbols, so a backtrace still names functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin sfrelay \
 && objcopy --strip-debug target/release/sfrelay /sfrelay

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sfrelay" \
      org.opencontainers.image.description="Salesforce record changes → Slack messages" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /sfrelay /usr/local/bin/sfrelay
# Defaults, so the image runs on its own; Kubernetes mounts its own sfrelay.toml, routes and
# templates over these (k8s/base). The fixtures are what `sfrelay check` renders against.
COPY sfrelay.toml /etc/sfrelay/sfrelay.toml
COPY routes/ /etc/sfrelay/routes/
COPY templates/ /etc/sfrelay/templates/
COPY tests/fixtures/*.json /etc/sfrelay/tests/fixtures/
# Also makes `kubectl exec … -- sfrelay dlq list` use the deployment's configuration.
ENV SFRELAY_CONFIG=/etc/sfrelay/sfrelay.toml \
    SFRELAY_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
# No HEALTHCHECK: there is no shell or curl in the image to run one; orchestrators probe
# GET /healthz and GET /readyz on port 8080 instead.
# checkov:skip=CKV_DOCKER_2:distroless has no shell or HTTP client; Kubernetes probes /healthz and /readyz
ENTRYPOINT ["/usr/local/bin/sfrelay"]
CMD ["serve"]
