# Version stamps of the Kubernetes binaries built from the module proxy (sourced by tools/k8s/build.sh and
# tools/nodes/build.sh after tools/k8s/versions.env).
# shellcheck shell=bash

# What `--version`, /version and the node status report; without it they say v0.0.0-master.
version_ldflags() {
  local minor="${KUBERNETES_VERSION#v1.}" package flags=""
  minor="${minor%%.*}"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $package.gitVersion=${KUBERNETES_VERSION} -X $package.gitMajor=1 -X $package.gitMinor=${minor}"
    flags+=" -X $package.gitTreeState=clean"
  done
  echo "$flags"
}

# A binary of the cache that was built without version stamps is built again.
is_current() {
  [[ -x "$1" ]] && [[ "$("$1" --version 2>/dev/null)" == *"Kubernetes ${KUBERNETES_VERSION}"* ]]
}
