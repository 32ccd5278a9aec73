# mqgate container image: a static binary on distroless, running as non-root.
#
#   docker build -t mqgate .
#   docker run --rm -p 8080:8080 -p 9613:9613 -p 9713:9713 -v mqgate-data:/data mqgate
#
# The configuration is deploy/plugins.yaml (embedded Kafka, data in /data);
# mount your own at /etc/mqgate/plugins.yaml. See docs/operations.md.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: pure Go, so the binary needs no libc and runs on
# distroless/static.
# .git is not in the build context, so `mqgate version` learns the version
# and commit from these (docker build --build-arg VERSION=v1.2.0
# --build-arg COMMIT=$(git rev-parse HEAD) .).
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" -o /out/mqgate ./cmd/mqgate
# The data directory, owned by the runtime user (distroless has no shell to
# create it later).
RUN mkdir -p /out/data && chown 65532:65532 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# mqgate runs its bundled plugins by executing this same file again
# (`mqgate plugin kafka`): it must stay at this path.
COPY --from=build /out/mqgate /usr/local/bin/mqgate
COPY deploy/plugins.yaml /etc/mqgate/plugins.yaml
COPY --from=build --chown=65532:65532 /out/data /data
# Relative paths of the config (./data/kafka, ./data/spool, ./data/push)
# resolve against the working directory, so they land in the volume.
WORKDIR /
VOLUME /data
# HTTP (API, /healthz, /readyz, /metrics), Thrift ProducerService, Thrift
# ConsumerService.
EXPOSE 8080 9613 9713
# The distroless nonroot user, numeric so that Kubernetes' runAsNonRoot can
# check it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mqgate"]
CMD ["serve", "-c", "/etc/mqgate/plugins.yaml"]
