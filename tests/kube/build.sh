#!/usr/bin/env bash
# Builds the upstream control plane (kube-apiserver, kube-controller-manager, kubectl, etcd)
# from the versions pinned in go.mod, and helm from helm/go.mod, into target/kube/bin.
# Go builds only upstream programs; these modules have no Go code of their own. Skips the build when the binaries are newer than
# go.mod/go.sum and this script; Go's own build cache makes a rebuild a relink.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${KUBE_BIN_DIR:-$root/target/kube/bin}"
mkdir -p "$out"

k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")
minor=${k8s_version#v1.}; minor=${minor%%.*}

up_to_date() {
  local bin
  for bin in kube-apiserver kube-controller-manager kubectl etcd; do
    [ -x "$out/$bin" ] || return 1
    for src in "$here/go.mod" "$here/go.sum" "$here/build.sh"; do
      [ "$out/$bin" -nt "$src" ] || return 1
    done
  done
}
# helm, for the chart's tests, from its own module so that its dependencies never move
# the control plane's.
helm_version=$(awk '$1=="helm.sh/helm/v4"{print $2; exit}' "$here/helm/go.mod")
if [ ! -x "$out/helm" ] || [ "$out/helm" -ot "$here/helm/go.mod" ] || [ "$out/helm" -ot "$here/build.sh" ]; then
  echo "building helm $helm_version"
  helm_start=$(date +%s)
  (cd "$here/helm" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
    -o "$out/helm.tmp" helm.sh/helm/v4/cmd/helm)
  mv "$out/helm.tmp" "$out/helm"
  echo "helm built in $(( $(date +%s) - helm_start )) s"
fi

if up_to_date; then
  echo "kube binaries up to date in $out ($k8s_version, etcd $etcd_version)"
  exit 0
fi

export CGO_ENABLED=0
# One build at a time: the machine has 2 cores, and the Go compiler already uses both.
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
cd "$here"
start=$(date +%s)
for cmd in kube-apiserver kube-controller-manager kubectl; do
  echo "building $cmd $k8s_version"
  go build -trimpath -ldflags "$kube_ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "building etcd $etcd_version"
go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$out/etcd.tmp" "$out/etcd"
echo "kube binaries built in $(( $(date +%s) - start )) s into $out"
