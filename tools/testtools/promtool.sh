# shellcheck shell=bash disable=SC2154  # $bin and $cache are set by tools/testtools/build.sh, which sources this
# Sourced by tools/testtools/build.sh (which sets $bin, $cache, PROMETHEUS_VERSION, GOTOOLCHAIN/GOFLAGS/CGO_ENABLED
# and defines log): build_promtool builds promtool from the Go module proxy into "$bin/promtool" when it is missing.
#
# Build tag remove_all_sd leaves out every service-discovery plugin (AWS, Azure, GCE, Kubernetes, ...): the tests only
# run `promtool check rules` and `promtool test rules`, which need none of them, and the build compiles far fewer
# packages. (Upstream's own tags, netgo and builtinassets, concern DNS through cgo and the web UI of prometheus
# itself; with CGO_ENABLED=0 and promtool they change nothing.)

build_promtool() {
  [[ -x "$bin/promtool" ]] && return
  local dir="$cache/build/promtool-${PROMETHEUS_VERSION}"
  mkdir -p "$dir"
  printf 'module aiso.local/promtool-build\n\ngo 1.26\n\nrequire github.com/prometheus/prometheus %s\n' \
    "$PROMETHEUS_VERSION" >"$dir/go.mod"
  log "building promtool ${PROMETHEUS_VERSION}"
  (cd "$dir" && go build -trimpath -tags remove_all_sd -ldflags="-s -w" -o "$bin/promtool.tmp" \
    github.com/prometheus/prometheus/cmd/promtool)
  mv "$bin/promtool.tmp" "$bin/promtool"
}
