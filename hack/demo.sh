#!/usr/bin/env bash
# The demo: starts a control plane and the operator, applies the CRDs and examples/ with kubectl,
# waits for them to converge and shows the result. Ctrl-C (or the end) stops everything.
#   hack/demo.sh                        on the embedded dev cluster (an emulation; starts at once)
#   hack/demo.sh --control-plane real   on kube-apiserver, etcd and kube-controller-manager built from
#                                       their Go modules (the first run builds them: about 6 minutes),
#                                       the operator logged in as the chart's ServiceAccount
#   hack/demo.sh --keep                 leave everything running until Ctrl-C (prints KUBECONFIG)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEEP=0
CONTROL_PLANE=dev
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --control-plane) CONTROL_PLANE=${2:-}; shift ;;
    --control-plane=*) CONTROL_PLANE=${1#*=} ;;
    *) echo "usage: hack/demo.sh [--keep] [--control-plane dev|real]" >&2; exit 2 ;;
  esac
  shift
done
case "$CONTROL_PLANE" in dev|real) ;; *) echo "--control-plane is dev or real, not '$CONTROL_PLANE'" >&2; exit 2 ;; esac

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

if [ "$CONTROL_PLANE" = real ]; then
  step "building (or reusing) the real control plane: hack/build-control-plane.sh"
  SSVM_CONTROL_PLANE_BIN=$(hack/build-control-plane.sh)
  export SSVM_CONTROL_PLANE_BIN
  step "starting etcd, kube-apiserver and kube-controller-manager, with the KubeVirt simulator and simulated guests"
else
  step "starting the embedded dev cluster"
fi
ssvm-operator devcluster --control-plane "$CONTROL_PLANE" --kubeconfig "$WORK/kubeconfig" >"$WORK/devcluster.log" 2>"$WORK/devcluster.err" &
PIDS+=($!)
for _ in $(seq 300); do grep -q '^kubeconfig: ' "$WORK/devcluster.log" && break; sleep 0.2; done
grep '^kubeconfig: ' "$WORK/devcluster.log" || { cat "$WORK/devcluster.log" "$WORK/devcluster.err"; echo "the control plane did not start" >&2; exit 1; }
export KUBECONFIG="$WORK/kubeconfig"
OPERATOR_KUBECONFIG=$KUBECONFIG

step "kubectl apply -f crds/"
kubectl apply -f crds/
# jsonpath, not condition=: a CRD just created has null conditions, which `--for=condition` fails on
kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Established")].status}'=True --timeout=60s \
  crd/zones.ssvm.io crd/imagestores.ssvm.io crd/secondarystoragevms.ssvm.io crd/templates.ssvm.io

if [ "$CONTROL_PLANE" = real ]; then
  step "the chart's RBAC: helm template --show-only templates/rbac.yaml | kubectl apply -f -"
  OPERATOR_KUBECONFIG=$(sed -n 's/^operator-kubeconfig: //p' "$WORK/devcluster.log")
  helm template ssvm charts/ssvm-operator --namespace ssvm-system --set serviceAccount.name=ssvm-operator \
    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml | kubectl apply -f -
  echo "the operator logs in as $(kubectl --kubeconfig "$OPERATOR_KUBECONFIG" auth whoami -o jsonpath='{.status.userInfo.username}')"
fi

step "starting the operator: ssvm-operator run -A"
KUBECONFIG="$OPERATOR_KUBECONFIG" ssvm-operator run -A --metrics-port 0 --liveness none --scan-interval 10 >"$WORK/operator.log" 2>&1 &
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

step "a template from an HTTP server of the demo: downloaded by the SSVMs onto every store of zone1 and zone2"
mkdir -p "$WORK/www"
python3 - "$WORK/www/demo.qcow2" <<'PY'
import os, struct, sys
with open(sys.argv[1], "wb") as fh:   # a QCOW2 header (1 GiB virtual) and 64 MiB of data
    fh.write(b"QFI\xfb" + struct.pack(">I", 3) + bytes(16) + struct.pack(">Q", 1 << 30))
    for _ in range(64):
        fh.write(os.urandom(1 << 20))
PY
SUM=$(sha256sum "$WORK/www/demo.qcow2" | cut -d' ' -f1)
python3 -m http.server 8099 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
PIDS+=($!)
# the server is on loopback: the zones must allow it (an internal site), as an admin allows an internal mirror;
# zone1's example proxy does not exist here, so it goes
kubectl patch zone zone1 zone2 --type merge -p '{"spec":{"secondaryStorage":{"allowedInternalSites":["127.0.0.1"],"httpProxy":null}}}'
cat <<TMPL | kubectl apply -f -
apiVersion: ssvm.io/v1alpha1
kind: Template
metadata: {name: demo-template}
spec:
  url: http://127.0.0.1:8099/demo.qcow2
  format: QCOW2
  checksum: sha256:$SUM
  zones: [zone1, zone2]
  extractable: true
TMPL
for _ in $(seq 60); do
  kubectl get tmpl demo-template --no-headers
  [ "$(kubectl get tmpl demo-template -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] && break
  sleep 1
done
kubectl wait tmpl demo-template --for=condition=Ready --timeout=60s || CONVERGED=0
kubectl get tmpl demo-template -o jsonpath='{range .status.stores[*]}{.store}{"\t"}{.state}{"\t"}{.ssvm}{"\t"}{.reason}{" "}{.message}{"\n"}{end}'
echo "download link: $(kubectl get tmpl demo-template -o jsonpath='{.status.downloadLinks[0].url}' | cut -c1-80)..."
echo "(examples/template.yaml names an Internet URL: without Internet access here it ends in Error, with its reason)"

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
