# oauth-client-operator — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Tool versions (installed into bin/, which git ignores).
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v4.3.2
KUSTOMIZE_VERSION ?= v5.8.2
GOLANGCI_LINT_VERSION ?= v2.15.0
# promtool of Prometheus v3.16.0 (Prometheus' Go module is versioned v0.3XX.Y for v3.XX.Y).
PROMTOOL_VERSION ?= v0.316.0
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.6.16

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CHART ?= charts/oauth-client-operator
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
PROMTOOL ?= $(LOCALBIN)/promtool

IMG ?= ghcr.io/oauth-client-operator/oauth-client-operator:latest
GO_TEST_FLAGS ?= -race -count=1
# Tests that need a control plane (envtest) or built binaries carry this build tag;
# `make test-unit` runs the others.
INTEGRATION_TAGS ?= integration
# make test builds the binaries the suites run once, here (devenv.PrebuiltEnv).
TEST_BINARIES ?= $(LOCALBIN)/test-binaries

export ENVTEST_K8S_VERSION ENVTEST_ETCD_VERSION LOCALBIN

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs (config/crd/bases) and the manager ClusterRole (config/rbac/role.yaml).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: chart
chart: manifests ## Generate the Helm chart's CRD and ClusterRole templates from config/crd/bases and config/rbac/role.yaml.
	./hack/chart-generate.sh

.PHONY: chart-lint
chart-lint: helm chart ## helm lint --strict the chart.
	$(HELM) lint --strict $(CHART)

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet (every file, integration tests included).
	go vet -tags $(INTEGRATION_TAGS) ./...

.PHONY: verify
verify: manifests generate chart ## Fail when gofmt or generated files are out of date.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are out of date: run 'make manifests generate chart' and commit"; exit 1; }

.PHONY: envtest
envtest: ## Provide the envtest binaries (kube-apiserver, etcd) in bin/k8s; builds them from the Go module proxy when nothing else works.
	@./hack/envtest-assets.sh >/dev/null

.PHONY: test
test: verify vet envtest helm kustomize promtool chart-lint test-binaries ## Run every test: unit, envtest suites on a real kube-apiserver + etcd, end-to-end.
	KUBEBUILDER_ASSETS="$$(./hack/envtest-assets.sh)" OAUTH_PREBUILT_BINARIES="$(TEST_BINARIES)" \
		go test $(GO_TEST_FLAGS) -tags $(INTEGRATION_TAGS) ./...

.PHONY: test-unit
test-unit: ## Every test that needs no API server and no built binary: the inner loop (under 2 minutes).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: test-binaries
test-binaries: ## Build the binaries the end-to-end suites run, once per make test.
	go build -o $(TEST_BINARIES)/ ./cmd/manager ./cmd/example-api

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run --build-tags $(INTEGRATION_TAGS)

.PHONY: dev
dev: envtest ## Run it all locally: control plane, operator + token server, example API, samples (DEV_FLAGS="--replicas 2": two managers with leader election; DEV_FLAGS=--tls: HTTPS with a local CA). Ctrl-C stops everything.
	go build -o $(LOCALBIN)/dev/dev ./cmd/dev
	KUBEBUILDER_ASSETS="$$(./hack/envtest-assets.sh)" exec $(LOCALBIN)/dev/dev $(DEV_FLAGS)

CLUSTER_DIR ?= $(LOCALBIN)/cluster
.PHONY: cluster
cluster: helm ## A real single-node cluster on this machine (root; containerd, kubelet, kube-proxy, CoreDNS) with the chart, samples and example workloads installed; prints cluster-ready: …; Ctrl-C removes it all. CLUSTER_KUBECONFIG=<path> installs into that cluster instead.
	go build -o $(CLUSTER_DIR)/cluster ./hack/cluster
	exec $(CLUSTER_DIR)/cluster -dir $(CLUSTER_DIR) up

.PHONY: cluster-load
cluster-load: ## Import an image tarball into the running local cluster (IMAGE_TAR=<path>), as `kind load image-archive` does.
	go build -o $(CLUSTER_DIR)/cluster ./hack/cluster
	$(CLUSTER_DIR)/cluster -dir $(CLUSTER_DIR) load $(IMAGE_TAR)

.PHONY: test-cluster
test-cluster: helm ## The end-to-end suite on real pods: on the running `make cluster`, else on one it starts (or CLUSTER_KUBECONFIG's) and removes.
	go build -o $(CLUSTER_DIR)/cluster ./hack/cluster
	go vet -tags cluster ./test/cluster/...
	CLUSTER_BIN=$(CLUSTER_DIR)/cluster CLUSTER_DIR=$(CLUSTER_DIR) HELM=$(HELM) go test -tags cluster -count=1 -timeout 45m -v ./test/cluster/

.PHONY: bench
bench: envtest ## Measure the token endpoint: the handler benchmark, then bounded loopback load runs (real operator vs a minimal endpoint: plain HTTP ES256 and RS256; TLS keep-alive, resumed and full handshakes; latency at 16 and 64 connections).
	go test -run '^$$' -bench 'BenchmarkToken|BenchmarkAuditRecord' -benchmem ./internal/tokenserver/
	KUBEBUILDER_ASSETS="$$(./hack/envtest-assets.sh)" go run ./test/load

.PHONY: bench-scale
bench-scale: envtest ## Scale benchmark (not part of make test): 10,000 OAuthClients on envtest (SCALE_FLAGS="--clients 100000"); time to Ready, memory and where it goes, token latency, a second replica's start, API-server load.
	KUBEBUILDER_ASSETS="$$(./hack/envtest-assets.sh)" go run ./test/scale $(SCALE_FLAGS)

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

IMAGE_TAR ?= $(LOCALBIN)/image/oauth-client-operator.tar
.PHONY: image
image: ## Build the container image without Docker (go-containerregistry) into $(IMAGE_TAR), tagged $(IMG).
	go run ./hack/image/build -tag $(IMG) -o $(IMAGE_TAR)

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: helm
helm: $(HELM)
$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# promtool checks and unit-tests the chart's PrometheusRule (test/install).
.PHONY: promtool
promtool: $(PROMTOOL)
$(PROMTOOL): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

$(LOCALBIN):
	mkdir -p $(LOCALBIN)
