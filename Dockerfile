# syntax=docker/dockerfile:1
#
# For those who build images with their own tooling (docker buildx, podman,
# kaniko, buildah). The project's own images come from `cargo xtask image`,
# which needs no container engine and is reproducible; this file builds the
# same four images (same binaries, entrypoints and user), one target each:
#
#   docker buildx build --target dialtone-operator -t dialtone-operator .
#   docker buildx build --target dialtone-voice    -t dialtone-voice .
#   docker buildx build --target dialtone-workers  -t dialtone-workers .
#   docker buildx build --target dialtone          -t dialtone .
#
# `cargo xtask test` checks that the targets below match `cargo xtask image`.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpocketsphinx-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Registry and target caches survive between builds: only what changed
# recompiles.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
      -p dialtone-operator -p dialtone-voice -p dialtone-workers -p dialtone-cli \
 && mkdir -p /out \
 && cp target/release/dialtone-operator target/release/dialtone-voice \
       target/release/dialtone-workers target/release/dialtone /out/

# glibc, libgcc, CA certificates, tzdata and the nonroot user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot AS dialtone-operator
COPY --from=build /out/dialtone-operator /usr/local/bin/dialtone-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dialtone-operator"]

# Builtin speech needs PocketSphinx with its model and espeak-ng from
# Debian, which distroless does not carry.
FROM debian:bookworm-slim AS dialtone-voice
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates tzdata libpocketsphinx3 pocketsphinx-en-us espeak-ng \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /sbin/nologin nonroot
COPY --from=build /out/dialtone-voice /usr/local/bin/dialtone-voice
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dialtone-voice"]

FROM gcr.io/distroless/cc-debian12:nonroot AS dialtone-workers
COPY --from=build /out/dialtone-workers /usr/local/bin/dialtone-workers
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/dialtone-workers"]

FROM gcr.io/distroless/cc-debian12:nonroot AS dialtone
COPY --from=build /out/dialtone /usr/local/bin/dialtone
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dialtone"]
