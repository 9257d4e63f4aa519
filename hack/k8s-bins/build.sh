#!/usr/bin/env bash
# Builds bin/k8s/<version>/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
# from hack/k8s-bins/<version>. A no-op when every binary is already there: the stamp file is
# written only after all five built, so an interrupted build is resumed, never trusted.
set -euo pipefail
kube=${1:?kube version, e.g. v1.37.2}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/hack/k8s-bins/$kube"
out="$root/bin/k8s/$kube"
[ -f "$src/go.mod" ] || { echo "no $src/go.mod: run hack/k8s-bins/generate.sh $kube ETCD_VERSION" >&2; exit 1; }
if [ -f "$out/.complete" ] && [ "$out/.complete" -nt "$src/go.mod" ]; then exit 0; fi
mkdir -p "$out"
minor=${kube#v1.}; minor=${minor%%.*}
# The version the binaries report (kube-apiserver /version, kubectl version): without these the
# build says v0.0.0-master, and upgrade health checks compare against the real release.
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kube -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
cd "$src"
declare -A pkgs=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
)
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if [ -x "$out/$name" ] && [ "$out/$name" -nt "$src/go.mod" ]; then continue; fi
  echo "building $name $kube" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "${pkgs[$name]}"
  mv "$out/$name.tmp" "$out/$name"
done
touch "$out/.complete"
