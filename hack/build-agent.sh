#!/usr/bin/env bash
# Builds the guest agent as a single executable zipapp (default dist/ssvm-agent.pyz) for cloud-init.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m ssvm_operator.agent.pack "${1:-dist/ssvm-agent.pyz}"
