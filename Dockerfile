# syntax=docker/dockerfile:1
# Kluis: one static binary in a distroless image, running as a non-root user.
#
#   docker build -t kluis --build-arg VERSION=$(git describe --always) .
#   docker run -d --name kluis --stop-timeout 15 -p 8080:8080 \
#     -v kluis-data:/var/lib/kluis -v /etc/kluis/credentials:/run/secrets:ro \
#     -e KLUIS_BASE_URL=https://kluis.example.nl \
#     -e KLUIS_SMTP_FILE=/run/secrets/smtp kluis
#
# Without KLUIS_SMTP(_FILE) it does not start: the development mailbox is
# for loopback only, and the image listens on all addresses.
#
# See docs/operations.md for the scaled setup (PostgreSQL, S3, several
# instances) and deploy/kluis.env.example for the settings.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (CGO off: SQLite is modernc.org/sqlite, pure Go), reproducible paths.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kluis ./cmd/kluis \
 && mkdir -p /out/data

# distroless/static: CA certificates and time zone data, no shell, no
# package manager; "nonroot" is uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kluis /usr/local/bin/kluis
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/kluis
USER 65532:65532
# The data folder: SQLite database, encrypted files and the master key when
# no PostgreSQL/S3/KLUIS_MASTER_KEY_FILE is configured. Back it up.
VOLUME ["/var/lib/kluis"]
ENV KLUIS_DATA=/var/lib/kluis \
    KLUIS_ADDR=0.0.0.0:8080
EXPOSE 8080
# Liveness only (/healthz): a database or storage outage is for the load
# balancer's /readyz check to handle, not a reason to restart.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/kluis", "healthcheck"]
# SIGTERM ends requests gracefully within KLUIS_SHUTDOWN_TIMEOUT (10s); give
# docker stop at least that: docker stop -t 15, or stop_grace_period: 15s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kluis"]
CMD ["serve"]
