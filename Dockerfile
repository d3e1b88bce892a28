# syntax=docker/dockerfile:1
#
# The fulfillment binary on a small, non-root image. The same image runs the
# server (serve, api, worker, migrate) and the KooGallery emulator
# (emulator serve); docker-compose.yml runs both.

##### build #####
FROM golang:1.26 AS build
WORKDIR /src

# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/fulfillment ./cmd/fulfillment

# The runtime image has no shell: create the spool directory here and copy it
# with the nonroot user's ownership.
RUN mkdir -p /out/var/lib/fulfillment/spool

##### runtime #####
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/fulfillment /fulfillment
COPY --from=build --chown=65532:65532 /out/var/lib/fulfillment /var/lib/fulfillment

# Callbacks the marketplace may send only once are kept here while Postgres is
# unreachable: mount persistent storage on it.
ENV FULFILLMENT_SPOOL_DIR=/var/lib/fulfillment/spool
VOLUME ["/var/lib/fulfillment/spool"]

# 8080: the server (HTTP_ADDR); 8090: the emulator (EMULATOR_ADDR).
EXPOSE 8080 8090

USER nonroot:nonroot
ENTRYPOINT ["/fulfillment"]
CMD ["serve"]
