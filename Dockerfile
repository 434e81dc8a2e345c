# pgveil container image.
#
#   docker build -t pgveil .
#   docker run -p 6432:6432 -p 9187:9187 \
#       -e PGVEIL_UPSTREAM="postgres://pgveil_svc:PASSWORD@db.internal:5432/seller?sslmode=verify-full" \
#       -e PGVEIL_TOKEN_KEY="$(openssl rand -hex 32)" \
#       -v "$PWD/rules:/etc/pgveil/rules:ro" pgveil
#
# Stage 1 builds the release binary: pg_query compiles PostgreSQL's parser (C) and runs bindgen,
# which needs libclang. Stage 2 is a small Debian runtime with nothing but the binary, CA
# certificates (for sslmode=verify-full towards the upstream) and a non-root user.
# The rules directory is read from /etc/pgveil/rules: the sample rules of this repository are
# baked in for `docker compose up`; mount your own over them (read-only is enough: pgveil
# only reads rules, and reloads them when they change).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Manifests first, so that a change in the sources does not refetch the dependencies.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin pgveil \
 && strip target/release/pgveil

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pgveil \
 && useradd --system --uid 10001 --gid pgveil --home-dir /var/lib/pgveil --shell /usr/sbin/nologin pgveil \
 && mkdir -p /etc/pgveil /var/lib/pgveil \
 && chown pgveil:pgveil /var/lib/pgveil
COPY --from=build /src/target/release/pgveil /usr/local/bin/pgveil
COPY rules /etc/pgveil/rules
USER pgveil
WORKDIR /var/lib/pgveil
# 6432: PostgreSQL protocol for clients. 9187: Prometheus /metrics, /healthz, /readyz.
EXPOSE 6432 9187
ENV PGVEIL_LISTEN=0.0.0.0:6432 \
    PGVEIL_METRICS=0.0.0.0:9187 \
    PGVEIL_RULES=/etc/pgveil/rules \
    PGVEIL_LOG_FORMAT=json
# The audit trail, when enabled (PGVEIL_AUDIT_LOG=/var/lib/pgveil/audit/audit.jsonl), belongs
# on a volume.
VOLUME ["/var/lib/pgveil"]
ENTRYPOINT ["pgveil", "serve"]
