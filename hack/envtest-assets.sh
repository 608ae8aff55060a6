#!/usr/bin/env bash
# Provides the envtest control-plane binaries (kube-apiserver, etcd) and prints the
# folder that holds them on stdout. Progress goes to stderr.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, if set and it holds both binaries;
#   2. a cached copy in bin/k8s/<k8s-version>-<os>-<arch>;
#   3. setup-envtest (downloads prebuilt binaries), with a short timeout;
#   4. a build from the Go module proxy: k8s.io/kubernetes/cmd/kube-apiserver with every
#      staging module replaced by its published version, and go.etcd.io/etcd/server/v3
#      with its sibling modules replaced likewise (see notes in README "Testing").
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.16}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-release-0.25}"
SETUP_ENVTEST_TIMEOUT="${SETUP_ENVTEST_TIMEOUT:-30}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="${LOCALBIN:-$root/bin}"
os="$(go env GOOS)"; arch="$(go env GOARCH)"
dest="$bindir/k8s/${K8S_VERSION}-${os}-${arch}"

log() { echo "envtest-assets: $*" >&2; }
complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && complete "$KUBEBUILDER_ASSETS"; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if complete "$dest"; then
  log "using cached binaries in $dest"
  echo "$dest"; exit 0
fi

mkdir -p "$dest"

# 3. setup-envtest, where its download site is reachable.
if [ "${ENVTEST_SKIP_DOWNLOAD:-}" != "1" ]; then
  log "trying setup-envtest ${K8S_VERSION} (timeout ${SETUP_ENVTEST_TIMEOUT}s)"
  if timeout "$SETUP_ENVTEST_TIMEOUT" env GOBIN="$bindir" go install \
       "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" >&2 2>/dev/null; then
    if path="$(timeout "$SETUP_ENVTEST_TIMEOUT" "$bindir/setup-envtest" use "$K8S_VERSION" \
         --bin-dir "$bindir/setup-envtest-cache" -p path 2>/dev/null)" && complete "$path"; then
      cp "$path/kube-apiserver" "$path/etcd" "$dest/"
      log "downloaded with setup-envtest into $dest"
      echo "$dest"; exit 0
    fi
  fi
  log "setup-envtest unavailable here; building from the Go module proxy instead"
fi

# 4. build from the Go module proxy.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod" GOWORK=off CGO_ENABLED=0

build_kube_apiserver() {
  local m="$work/kube-apiserver"; mkdir -p "$m"; cd "$m"
  log "kube-apiserver v${K8S_VERSION}: resolving k8s.io/kubernetes (first build takes about 6 minutes on 2 cores)"
  go mod init envtest-build/kube-apiserver >/dev/null 2>&1
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@v${K8S_VERSION}"; exit 1; }
  local staging="0.${K8S_VERSION#1.}"
  {
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    # Every k8s.io/<name> => ./staging/src/k8s.io/<name> of kubernetes' go.mod becomes the published module.
    grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" |
      awk -v v="v${staging}" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
  go mod tidy >&2
  log "kube-apiserver: compiling"
  go build -trimpath -ldflags "-s -w" -o "$dest/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
}

build_etcd() {
  local m="$work/etcd"; mkdir -p "$m"; cd "$m"
  log "etcd v${ETCD_VERSION}: building go.etcd.io/etcd/server/v3"
  go mod init envtest-build/etcd >/dev/null 2>&1
  {
    echo "require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}"
    for sib in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      echo "replace go.etcd.io/etcd/${sib} => go.etcd.io/etcd/${sib} v${ETCD_VERSION}"
    done
  } >> go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$dest/etcd" go.etcd.io/etcd/server/v3 >&2
}

[ -x "$dest/etcd" ] || build_etcd
[ -x "$dest/kube-apiserver" ] || build_kube_apiserver
complete "$dest" || { log "build finished but binaries are missing in $dest"; exit 1; }
log "built envtest binaries into $dest"
echo "$dest"
