#!/usr/bin/env bash
# The test command: installs everything it needs, then runs the unit, integration and system tests.
# Extra arguments go to pytest (for example: hack/test.sh tests/unit -x).
set -uo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh || { echo "setup failed" >&2; exit 1; }
export PATH="$(pwd)/.venv/bin:$(pwd)/.tools/bin:$PATH"
# The real control plane (kube-apiserver, kube-controller-manager, etcd) from their Go modules: cached
# outside the work tree, so only the first run on a machine builds it (about 6 minutes on 2 cores).
SSVM_CONTROL_PLANE_BIN=$(hack/build-control-plane.sh) || { echo "building the control plane failed" >&2; exit 1; }
export SSVM_CONTROL_PLANE_BIN
# The SSVM image from Debian's archive, for the system test that boots it: cached the same way (about 70 s).
SSVM_IMAGE=$(hack/ssvm-image/build.sh) || { echo "building the SSVM image failed" >&2; exit 1; }
export SSVM_IMAGE
.venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a success" >&2
  exit 1
fi
exit "$rc"
