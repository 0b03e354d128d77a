#!/usr/bin/env bash
# Builds the real Kubernetes control plane used by the tests (kube-apiserver,
# kube-controller-manager, etcd) from their Go modules, into a cache outside the work tree.
# Prints the directory holding the binaries on its last line. Reuses a complete cache.
set -euo pipefail

K8S_VERSION="${SSVM_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${SSVM_ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${SSVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ssvm-operator}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The cache is keyed by the versions and by this recipe (script and wrapper modules), never reused stale.
RECIPE=$(cat "${BASH_SOURCE[0]}" "$HERE"/control-plane/*/* | sha256sum | cut -c1-12)
OUT="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$RECIPE"

say() { echo "control-plane: $*" >&2; }

if [[ -x "$OUT/bin/kube-apiserver" && -x "$OUT/bin/kube-controller-manager" && -x "$OUT/bin/etcd" ]]; then
  echo "$OUT/bin"
  exit 0
fi

[[ -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null && export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { say "Go (1.26) is needed to build the control plane: go is not on PATH"; exit 1; }
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
mkdir -p "$OUT/bin" "$OUT/src"
start=$(date +%s)

# k8s.io/kubernetes requires its staging modules at v0.0.0 (replaced by ./staging in its own
# repository); our wrapper module pins each of them to the matching published v0.x release.
build_kubernetes() {
  local src="$OUT/src/kubernetes" staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$src"
  sed -e "s/@K8S_VERSION@/$K8S_VERSION/" "$HERE/control-plane/kubernetes/go.mod.in" > "$src/go.mod"
  cp "$HERE/control-plane/kubernetes/tools.go" "$src/tools.go"
  say "reading k8s.io/kubernetes@$K8S_VERSION's go.mod for its staging modules"
  local gomod
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging
  staging=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  {
    echo "replace ("
    for module in $staging; do echo "	$module => $module $staging_version"; done
    echo ")"
  } >> "$src/go.mod"
  say "resolving modules (the first run downloads about 300 MiB)"
  (cd "$src" && go mod tidy)
  # the version the binaries report (/version, --version), as a release build stamps it
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  for cmd in kube-apiserver kube-controller-manager; do
    say "compiling $cmd $K8S_VERSION (several minutes on 2 cores when cold)"
    (cd "$src" && go build -ldflags "$ldflags" -o "$OUT/bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$OUT/bin/$cmd.tmp" "$OUT/bin/$cmd"
  done
}

build_etcd() {
  local src="$OUT/src/etcd"
  mkdir -p "$src"
  sed -e "s/@ETCD_VERSION@/$ETCD_VERSION/" "$HERE/control-plane/etcd/go.mod.in" > "$src/go.mod"
  cp "$HERE/control-plane/etcd/main.go" "$src/main.go"
  say "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  (cd "$src" && go mod tidy)
  say "compiling etcd $ETCD_VERSION"
  (cd "$src" && go build -o "$OUT/bin/etcd.tmp" .)
  mv "$OUT/bin/etcd.tmp" "$OUT/bin/etcd"
}

[[ -x "$OUT/bin/etcd" ]] || build_etcd
[[ -x "$OUT/bin/kube-apiserver" && -x "$OUT/bin/kube-controller-manager" ]] || build_kubernetes
say "built in $(( $(date +%s) - start )) s: $OUT/bin"
echo "$OUT/bin"
