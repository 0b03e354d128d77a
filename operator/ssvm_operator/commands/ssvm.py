"""Day-2 verbs on SecondaryStorageVMs, through the Kubernetes API with your kubeconfig (also `kubectl ssvm`):

  ssvm-operator ssvm list [-A]            the SSVMs, their state, Ready reason and last health check
  ssvm-operator ssvm start|stop NAME      set desiredState and wait for Running / Stopped
  ssvm-operator ssvm reboot NAME          rebootRequest: a new instance of the same VM
  ssvm-operator ssvm recreate NAME        recreateRequest: the VM destroyed and made again
  ssvm-operator ssvm check NAME           checkRequest: a health check now, its result printed
  ssvm-operator ssvm diagnose NAME [-o F] diagnosticsRequest: collect the bundle (secrets redacted), print it or
                                          write it as a .tar.gz

Each waits for the operator's acknowledgement with a progress line on stderr, and exits 0 when done,
1 with the reason when the SSVM fails or the wait times out, 2 on bad usage or an unknown name.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.commands.kubeapi import Cluster, CommandError, add_cluster_arguments, condition, new_token
from ssvm_operator.model.views import is_ssvm_failure


VERBS = ("list", "start", "stop", "reboot", "recreate", "check", "diagnose")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=VERBS, help="what to do")
    parser.add_argument("name", nargs="?", help="the SecondaryStorageVM (not for list)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list: every namespace")
    parser.add_argument("-o", "--output", metavar="FILE.tar.gz", help="diagnose: write the bundle here instead of printing it")
    parser.add_argument("--fail-after", type=float, default=20.0, metavar="SECONDS",
                        help="give up when the same failure reason (not progress) lasts this long (default: %(default)s)")
    add_cluster_arguments(parser)


def _progress(ssvm: dict[str, Any]) -> str:
    st = ssvm.get("status") or {}
    ready = condition(ssvm, "Ready")
    text = f"{ssvm['metadata']['name']}: {st.get('state') or 'no state yet'}"
    if ready.get("status") != "True" and ready.get("reason"):
        text += f", {ready['reason']}: {ready.get('message', '')}"[:300]
    return text


class _FailureWatch:
    """Gives up when the same failure reason lasts `fail_after` seconds (booting and waiting are not failures)."""

    def __init__(self, fail_after: float) -> None:
        self.fail_after = fail_after
        self.reason: str | None = None
        self.since = 0.0

    def check(self, ssvm: dict[str, Any]) -> None:
        ready = condition(ssvm, "Ready")
        reason = ready.get("reason", "") if ready.get("status") == "False" else ""
        if not is_ssvm_failure(reason):
            self.reason = None
            return
        if reason != self.reason:
            self.reason, self.since = reason, time.monotonic()
        elif time.monotonic() - self.since >= self.fail_after:
            raise CommandError(f"{ssvm['metadata']['name']} failed: {reason}: {ready.get('message', '')}")


def _wait_state(cluster: Cluster, name: str, state: str, fail_after: float, ack: tuple[str, str] | None = None) -> dict[str, Any]:
    failures = _FailureWatch(fail_after)
    latest: dict[str, Any] = {}

    def probe() -> tuple[bool, str]:
        nonlocal latest
        latest = cluster.get(c.SSVM_PLURAL, name)
        st = latest.get("status") or {}
        acked = ack is None or st.get(ack[0]) == ack[1]
        if acked and state == "Running":
            failures.check(latest)
        if state == "Stopped" and latest["spec"].get("desiredState") == "Running":
            raise CommandError(f"{name} was started again by its zone, which keeps minRunning SSVMs running "
                               "(lower the zone's minRunning, or stop another SSVM)")
        done = acked and st.get("state") == state and (state != "Running" or condition(latest, "Ready").get("status") == "True")
        return done, _progress(latest) if acked else f"{name}: waiting for the operator to take the request"
    cluster.wait(f"{name} to be {state}", probe)
    return latest


def _list(cluster: Cluster, all_namespaces: bool) -> int:
    rows = [("NAMESPACE", "NAME", "ZONE", "ROLE", "STATE", "READY", "REASON", "HEALTHY", "LAST-CHECK")]
    for s in sorted(cluster.list(c.SSVM_PLURAL, all_namespaces), key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        st, ready = s.get("status") or {}, condition(s, "Ready")
        health = st.get("health") or {}
        rows.append((s["metadata"]["namespace"], s["metadata"]["name"], s["spec"].get("zoneRef", ""), s["spec"].get("role", ""),
                     st.get("state") or "-", ready.get("status", "-"), ready.get("reason", "-") if ready.get("status") != "True" else "",
                     "-" if health.get("healthy") is None else str(health["healthy"]).lower(), health.get("lastCheckTime") or "-"))
    if not all_namespaces:
        rows = [r[1:] for r in rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _ask_running(cluster: Cluster, name: str, field: str, what: str) -> dict[str, Any]:
    """Sets a new `<field>Request` token on a running SSVM and waits until status observes it; the SSVM then."""
    token = new_token(field)
    cluster.patch(c.SSVM_PLURAL, name, {"spec": {f"{field}Request": token}})
    observed = f"observed{field[0].upper()}{field[1:]}Request"

    def probe() -> tuple[bool, str]:
        s = cluster.get(c.SSVM_PLURAL, name)
        if (s.get("status") or {}).get("state") != "Running":
            raise CommandError(f"{name} is {(s.get('status') or {}).get('state') or 'not running'}: {what} needs a running SSVM")
        done = (s.get("status") or {}).get(observed) == token
        return done, f"{name}: {what} {token} {'done' if done else 'requested'}"
    cluster.wait(f"the {what} of {name}", probe)
    return cluster.get(c.SSVM_PLURAL, name)


def _check(cluster: Cluster, name: str) -> int:
    ssvm = _ask_running(cluster, name, "check", "check")
    health = (ssvm.get("status") or {}).get("health") or {}
    for check in health.get("checks") or []:
        print(f"{'ok  ' if check.get('ok') else 'FAIL'}  {check.get('name')}  {check.get('message') or ''}".rstrip())
    print(f"{name}: {'healthy' if health.get('healthy') else 'unhealthy'} at {health.get('lastCheckTime')}")
    return 0 if health.get("healthy") else 1


def _diagnose(cluster: Cluster, name: str, output: str | None) -> int:
    import io
    import tarfile

    ssvm = _ask_running(cluster, name, "diagnostics", "diagnostics")
    token = (ssvm.get("status") or {}).get("observedDiagnosticsRequest")
    bundle = (ssvm.get("status") or {}).get("diagnostics") or {}
    data = cluster.configmap_data(bundle.get("configMap", f"{name}-diagnostics"))
    if output:
        with tarfile.open(output, "w:gz") as tar:
            for key, text in sorted(data.items()):
                raw = text.encode()
                info = tarfile.TarInfo(f"{name}-{token}/{key}")
                info.size, info.mtime = len(raw), int(time.time())
                tar.addfile(info, io.BytesIO(raw))
        print(f"{name}: {len(data)} files, {sum(len(v) for v in data.values())} bytes in {output}")
    else:
        for key, text in sorted(data.items()):
            print(f"===== {key}\n{text.rstrip()}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.verb != "list" and not args.name:
            raise CommandError(f"{args.verb} needs the name of a SecondaryStorageVM", 2)
        cluster = Cluster(args)
        if args.verb == "list":
            return _list(cluster, args.all_namespaces)
        name = args.name
        cluster.get(c.SSVM_PLURAL, name)   # an unknown name fails here, before anything is changed
        if args.verb in ("start", "stop"):
            state = "Running" if args.verb == "start" else "Stopped"
            cluster.patch(c.SSVM_PLURAL, name, {"spec": {"desiredState": state}})
            _wait_state(cluster, name, state, args.fail_after)
        elif args.verb in ("reboot", "recreate"):
            token = new_token(args.verb)
            field = f"{args.verb}Request"
            cluster.patch(c.SSVM_PLURAL, name, {"spec": {field: token}})
            _wait_state(cluster, name, "Running", args.fail_after, (f"observed{field[0].upper()}{field[1:]}", token))
        elif args.verb == "diagnose":
            return _diagnose(cluster, name, args.output)
        else:
            return _check(cluster, name)
        print(f"{name}: {args.verb} done")
        return 0
    except CommandError as e:
        print(f"ssvm {args.verb}: {e}", file=sys.stderr)
        return e.code
