# syntax=docker/dockerfile:1
# The operator's image: a static manager binary on distroless, running as non-root.
#   make docker-build IMG=<registry>/oauth-client-operator:<tag>

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Dependencies first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/

# A static binary (no cgo), reproducible paths, no debug info.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="oauth-client-operator" \
      org.opencontainers.image.description="Machine-to-machine OAuth 2.0 clients as Kubernetes objects, with a bundled token server" \
      org.opencontainers.image.source="https://github.com/oauth-client-operator/oauth-client-operator"
WORKDIR /
COPY --from=builder /out/manager /manager
# 65532 is distroless's "nonroot"; the chart's securityContext runs as the same ids.
USER 65532:65532
EXPOSE 8443 8080 8081
ENTRYPOINT ["/manager"]
