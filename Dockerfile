# syntax=docker/dockerfile:1.7
# One image with every IEE binary: iee (standalone and CLI verbs), iee-ingest, iee-profile,
# iee-predict, iee-decide, iee-kpi and iee-loadtest. The chart picks the binary per workload.
#   docker build -t iee:0.1.0 .
# No system protoc is needed: crates/api compiles the contracts with protox.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binaries are copied out in the
# same step because the cache is not part of the image. iee-profile gets its `kube` feature, so
# the chart's components.profile.membership=kubernetes works with this image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins --workspace --exclude xtask --features iee-profile/kube \
 && mkdir -p /out \
 && for bin in iee iee-ingest iee-profile iee-predict iee-decide iee-kpi iee-loadtest; do \
        cp "target/release/${bin}" /out/; \
    done

# Debian slim: glibc and libgcc for Rust binaries, plus CA certificates for TLS to collectors;
# the services run as the unprivileged user 65532.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="iee" \
      org.opencontainers.image.description="IEE services: ingest, profile, predict, decide, kpi, standalone, loadtest"
COPY --from=builder /out/ /usr/local/bin/
COPY loadtest/scenarios/ /usr/share/iee/loadtest/scenarios/
COPY examples/decide/ /usr/share/iee/examples/decide/
USER 65532:65532
# gRPC and Prometheus metrics (the chart sets server.listen / telemetry.metrics_listen to 0.0.0.0).
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/iee"]
CMD ["standalone", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
