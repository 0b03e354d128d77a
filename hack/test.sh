#!/usr/bin/env bash
# The test command: installs everything it needs, then runs the unit, integration and system tests.
# Extra arguments go to pytest (for example: hack/test.sh tests/unit -x).
set -uo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh || { echo "setup failed" >&2; exit 1; }
export PATH="$(pwd)/.venv/bin:$(pwd)/.tools/bin:$PATH"
.venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a success" >&2
  exit 1
fi
exit "$rc"
