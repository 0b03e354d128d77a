#!/usr/bin/env bash
# The demo: starts the embedded dev cluster and the operator, applies the CRDs and examples/ with
# kubectl, waits for them to converge and shows the result. Ctrl-C (or the end) stops everything.
#   hack/demo.sh           run the demo and stop
#   hack/demo.sh --keep    leave the cluster and operator running until Ctrl-C (prints KUBECONFIG)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

hack/setup.sh
export PATH="$ROOT/.venv/bin:$ROOT/.tools/bin:$PATH"
WORK=$(mktemp -d /tmp/ssvm-demo.XXXXXX)
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  echo "demo stopped; nothing left running"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting the embedded dev cluster"
ssvm-operator devcluster --port 0 --kubeconfig "$WORK/kubeconfig" >"$WORK/devcluster.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^kubeconfig: ' "$WORK/devcluster.log" && break; sleep 0.2; done
grep '^kubeconfig: ' "$WORK/devcluster.log" || { cat "$WORK/devcluster.log"; echo "dev cluster did not start" >&2; exit 1; }
export KUBECONFIG="$WORK/kubeconfig"

step "kubectl apply -f crds/"
kubectl apply -f crds/

step "starting the operator: ssvm-operator run -A"
ssvm-operator run -A --metrics-port 0 --liveness none --scan-interval 10 >"$WORK/operator.log" 2>&1 &
PIDS+=($!)

step "kubectl apply -f examples/"
kubectl apply -f examples/

step "waiting for the operator to report on every object"
for kind in zone imgstore ssvm; do
  kubectl wait "$kind" --all --for=jsonpath='{.status.observedGeneration}'=1 --timeout=60s
done

step "SSVMs Running: SSH on 3922 with the pinned host key, guest actions applied (simulated guests)"
CONVERGED=1
kubectl wait zone --all --for=condition=Ready --timeout=120s || CONVERGED=0
kubectl wait ssvm --all --for=condition=Ready --timeout=60s || CONVERGED=0
kubectl get ssvm -o custom-columns='NAME:.metadata.name,STATE:.status.state,CONTROL:.status.nics.control.ip,HOSTKEY:.status.hostKeyFingerprint,SETUP-STORE:.status.actions.setupStore.result,FIREWALL:.status.actions.firewall.result,VM-SETUP:.status.actions.vmSetup.result,HEALTHY:.status.health.healthy'
kubectl get imgstore -o custom-columns='NAME:.metadata.name,MOUNTED-ON:.status.mounts[*].ssvm,RESULT:.status.mounts[*].result,PARENT-DIR:.status.parentDir'

step "kubectl get cloud"
kubectl get cloud -o wide

step "the KubeVirt VirtualMachines and instances behind them (KubeVirt simulator)"
kubectl get vm,vmi

step "events of zone/zone1"
kubectl get events --field-selector involvedObject.name=zone1 -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message' | head -n 12

step "conditions of zone/zone1"
kubectl get zone zone1 -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'

step "a bad object is refused at apply time"
cat <<'BAD' | kubectl apply -f - || true
apiVersion: ssvm.io/v1alpha1
kind: Zone
metadata: {name: broken}
spec:
  secondaryStorage:
    minRunning: 9
    maxCount: 2
    allowedInternalSites: [0.0.0.0/0]
    httpProxy: https://proxy.example.com
BAD

if [ "$KEEP" = 1 ]; then
  step "still running; in another shell: export KUBECONFIG=$KUBECONFIG  (Ctrl-C here stops it)"
  wait
fi
step "operator log (last lines)"
tail -n 15 "$WORK/operator.log"
if [ "$CONVERGED" != 1 ]; then
  echo "the examples did not converge: see the conditions above" >&2
  exit 1
fi
step "converged: every zone and SSVM is Ready"
