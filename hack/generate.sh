#!/usr/bin/env bash
# Regenerates every generated file, in dependency order: CRDs (from the models), the API and
# configuration docs (from the CRDs), the plain kubectl manifests (from the chart, CRDs included),
# the Argo CD health checks, and the KubeVirt CRD schemas (from shared/schemas). Tests fail while
# any of them is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || hack/setup.sh
export PATH="$(pwd)/.venv/bin:$(pwd)/.tools/bin:$PATH"
"$PY" hack/gen_crds.py
"$PY" hack/gen_docs.py
"$PY" hack/gen_deploy.py
"$PY" hack/gen_argocd.py
"$PY" hack/gen_kubevirt_crds.py
