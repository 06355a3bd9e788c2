# syntax=docker/dockerfile:1
# One file, two images:
#   docker build --target operator -t ghcr.io/hookwarden/operator:0.1.0 .
#   docker build --target receiver -t ghcr.io/hookwarden/receiver:0.1.0 .
# Both are built from the same sources and Cargo.lock the tests use (--locked).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Two cargo invocations, on purpose: one invocation unifies the features
# of the crates both binaries share, and the operator turns on crds' `kube`
# feature, which would put kube into the receiver too. The data plane is
# built without kube (tests/tools/deps-check.sh checks the receiver's tree
# alone; the chart tests check that no invocation builds both here).
# Dependencies with the same features are compiled once and shared through
# the target dir; the cache mounts keep the registry and target dir between
# builds without putting them in a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hookwarden-receiver \
    && cargo build --release --locked -p hookwarden-operator \
    && mkdir -p /out \
    && cp target/release/hookwarden-operator target/release/hookwarden-receiver /out/

# distroless/cc: glibc and libgcc for the dynamically linked binaries, no
# shell, no package manager. ring brings its own crypto, so no OpenSSL.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/hookwarden-operator /usr/local/bin/hookwarden-operator
# 65532 is distroless' "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hookwarden-operator"]
CMD ["run"]

FROM gcr.io/distroless/cc-debian12:nonroot AS receiver
COPY --from=build /out/hookwarden-receiver /usr/local/bin/hookwarden-receiver
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hookwarden-receiver"]
CMD ["serve"]
