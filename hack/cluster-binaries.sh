#!/usr/bin/env bash
# Provides the binaries of the local single-node cluster (`make cluster`) and prints the
# folder that holds them on stdout. Progress goes to stderr.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
#       k8s.io/kubernetes/cmd/<name> at v$CLUSTER_K8S_VERSION, built as hack/envtest-assets.sh
#       builds kube-apiserver (a throwaway module that replaces every staging module by its
#       published version), with the version stamped in (-X …/version.gitVersion) so
#       clients and charts that check the server's version work;
#   etcd
#       the envtest build (hack/envtest-assets.sh);
#   coredns
#       github.com/coredns/coredns at v$CLUSTER_COREDNS_VERSION, with only the plugins the
#       cluster DNS uses (no forwarding: names outside the cluster are not resolved).
#
# Everything is cached in bin/cluster/k8s/<version>-<os>-<arch>; a second run prints the folder.
set -euo pipefail

K8S_VERSION="${CLUSTER_K8S_VERSION:-${ENVTEST_K8S_VERSION:-1.37.2}}"
COREDNS_VERSION="${CLUSTER_COREDNS_VERSION:-1.14.7}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="${LOCALBIN:-$root/bin}"
os="$(go env GOOS)"; arch="$(go env GOARCH)"
dest="$bindir/cluster/k8s/${K8S_VERSION}-${os}-${arch}"
kube_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { echo "cluster-binaries: $*" >&2; }
have_all() {
  local b
  for b in "${kube_cmds[@]}" etcd coredns; do [ -x "$dest/$b" ] || return 1; done
}

if have_all; then
  log "using cached binaries in $dest"
  echo "$dest"; exit 0
fi
mkdir -p "$dest"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod" GOWORK=off CGO_ENABLED=0

# etcd: the envtest one (same version, built or cached by hack/envtest-assets.sh).
if [ ! -x "$dest/etcd" ]; then
  envtest="$bindir/k8s/${K8S_VERSION}-${os}-${arch}"
  [ -x "$envtest/etcd" ] || envtest="$(ENVTEST_K8S_VERSION="$K8S_VERSION" "$root/hack/envtest-assets.sh")"
  cp "$envtest/etcd" "$dest/etcd"
fi

build_kube() {
  local missing=() b
  for b in "${kube_cmds[@]}"; do [ -x "$dest/$b" ] || missing+=("$b"); done
  [ "${#missing[@]}" -gt 0 ] || return 0
  local m="$work/kubernetes"; mkdir -p "$m"; cd "$m"
  log "${missing[*]} v${K8S_VERSION}: resolving k8s.io/kubernetes"
  go mod init cluster-build/kubernetes >/dev/null 2>&1
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@v${K8S_VERSION}"; exit 1; }
  local staging="0.${K8S_VERSION#1.}"
  {
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" |
      awk -v v="v${staging}" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for b in "${kube_cmds[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
    printf ')\n'
  } > tools.go
  go mod tidy >&2
  local major="${K8S_VERSION%%.*}" minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  local x="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=v${K8S_VERSION} -X $p.gitMajor=${major} -X $p.gitMinor=${minor} -X $p.gitTreeState=clean"
  done
  local pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "compiling ${missing[*]} (about 7 minutes on 2 cores with an empty build cache, 4 after the envtest build)"
  # One go build for all: packages shared by the commands compile once. The flags match
  # hack/envtest-assets.sh so its kube-apiserver build cache is reused.
  go build -trimpath -ldflags "-s -w${x}" -o "$dest/" "${pkgs[@]}" >&2
}

build_coredns() {
  [ -x "$dest/coredns" ] && return 0
  local m="$work/coredns"; mkdir -p "$m"; cd "$m"
  log "coredns v${COREDNS_VERSION}: building with the kubernetes, errors, health, ready, cache, loop, reload and log plugins"
  go mod init cluster-build/coredns >/dev/null 2>&1
  echo "require github.com/coredns/coredns v${COREDNS_VERSION}" >> go.mod
  # CoreDNS's own main with a shorter plugin list (the order is the order plugins run in).
  cat > main.go <<'EOF'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	dnsserver.Directives = []string{"reload", "errors", "log", "health", "ready", "cache", "loop", "kubernetes"}
}

func main() { coremain.Run() }
EOF
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$dest/coredns" . >&2
}

build_coredns
build_kube
have_all || { log "build finished but binaries are missing in $dest"; exit 1; }
log "built the cluster binaries into $dest"
echo "$dest"
