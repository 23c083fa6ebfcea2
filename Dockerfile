# tidegate's container image: a static binary on distroless, run as non-root.
#
#   docker build -t tidegate:dev --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm -p 8080:8080 tidegate:dev          # the sim demo on :8080
#
# Stage 1 builds with the Go toolchain; CGO is off (the SQLite driver is
# pure Go), so the binary needs no libc and runs on an image without one.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/tidegate/tidegate/internal/cli.Version=${VERSION}" \
      -o /out/tidegate ./cmd/tidegate \
 && mkdir -p /out/data

# Stage 2: distroless static (CA certificates, tzdata, a nonroot user, no
# shell). The data folder is the working directory, owned by that user:
# the demo's SQLite store and the bill outbox live there (mount a volume).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tidegate /usr/local/bin/tidegate
COPY --from=build --chown=65532:65532 /out/data /var/lib/tidegate
WORKDIR /var/lib/tidegate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tidegate"]
# Without a config: the sim demo, listening on every interface of the
# container. The Helm chart passes --config instead.
CMD ["serve", "--listen", "0.0.0.0:8080"]
