#!/usr/bin/env bash
# Debian's chromium for the headless-browser check of the comparison's report.html
# (tests/unit/compare/test_report_html_browser.py). Installs it only when missing; prints the browser's path.
set -euo pipefail

find_browser() {
  command -v chromium || command -v chromium-headless-shell || true
}

browser=$(find_browser)
if [[ -z $browser ]]; then
  echo "[report-chromium] installing Debian's chromium" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "[report-chromium] apt-get needs root: run 'apt-get install chromium' as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  browser=$(find_browser)
  [[ -n $browser ]] || { echo "[report-chromium] chromium installed but not on PATH" >&2; exit 1; }
fi
echo "$browser"
