#!/usr/bin/env bash
# Debian packages the real-node tier needs: runc and the CNI plugins (the issue asks for Debian's), iptables (the
# kubelet probes it), and debootstrap for the workload image's root filesystem. Installs only what is missing.
set -euo pipefail

wanted=(runc containernetworking-plugins iptables debootstrap)
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "[nodes-deps] installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "[nodes-deps] the real-node tier runs as root (kubelet, containerd, mounts, cgroups)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
