# syntax=docker/dockerfile:1
#
# workspace-gate container image: a release build on Debian, copied into a
# slim Debian runtime that runs as UID/GID 65532 with nothing writable.
#
#   docker build -t <your-registry>/workspace-gate:0.1.0 .
#
# The image needs no writable path: run it with a read-only root filesystem
# (the Helm chart does, mounting only a small in-memory /tmp).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole source tree (see .dockerignore): Cargo.toml may name targets
# under tests/, benches/ or examples/, and sources may include files from
# anywhere in the repository.
COPY . .
# Cache mounts keep the registry and the target directory between builds; the
# binary is copied out because the cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin workspace-gate \
 && install -D -m 0755 target/release/workspace-gate /out/workspace-gate

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for HTTPS to GitLab (a private CA can be added with
# SSL_CERT_FILE pointing at a mounted bundle).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /out/workspace-gate /usr/local/bin/workspace-gate
USER 65532:65532
WORKDIR /
# 8080: login pages and /check/*; 9091: Envoy ext_authz gRPC; 9090: admin.
EXPOSE 8080 9091 9090
ENTRYPOINT ["/usr/local/bin/workspace-gate"]
CMD ["serve", "--config", "/etc/workspace-gate/config.yaml"]
