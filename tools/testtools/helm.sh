# shellcheck shell=bash disable=SC2154  # $bin and $cache are set by tools/testtools/build.sh, which sources this
# helm (Helm 3's CLI), built from the Go module proxy for the chart tests (tests/integration/test_helm_chart.py,
# tests/unit/test_helm_chart_render.py). Sourced by tools/testtools/build.sh, which sets $bin, $cache, HELM_VERSION,
# the Go environment and log().

build_helm() {
  [[ -x "$bin/helm" ]] && return
  local dir="$cache/build/helm-${HELM_VERSION}"
  mkdir -p "$dir"
  # A throwaway module that requires helm at the pinned version; go resolves the rest from helm's own go.mod.
  printf 'module aiso.local/helm-build\n\ngo 1.26\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" >"$dir/go.mod"
  # As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume without a cluster
  # (.Capabilities.KubeVersion, Chart.yaml's kubeVersion check, deprecation warnings) is the one of the client-go it
  # is built with (v0.37.x -> 1.37); without these flags it would be 1.20.
  local client_go major minor
  client_go="$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)" # v0.37.0
  client_go="${client_go#v}"
  major="$((${client_go%%.*} + 1))"
  minor="${client_go#*.}"
  minor="${minor%%.*}"
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=${major} -X ${pkg}.k8sVersionMinor=${minor}"
  done
  log "building helm ${HELM_VERSION} (default Kubernetes version ${major}.${minor})"
  (cd "$dir" && go build -trimpath -ldflags="$ldflags" -o "$bin/helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$bin/helm.tmp" "$bin/helm"
}
