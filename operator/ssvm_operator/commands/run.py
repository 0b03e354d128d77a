"""Run the operator against the cluster of the current kubeconfig (or the in-cluster service account).

It watches Zone, ImageStore and SecondaryStorageVM objects (group ssvm.io) and reconciles them.
Examples:
  ssvm-operator run -A                      # all namespaces
  ssvm-operator run -n cloud -n cloud-dr    # only these namespaces
  KUBECONFIG=~/.kube/dev ssvm-operator run -A --metrics-port 9090
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default when no -n is given)")
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NAMESPACE",
                       help="watch only this namespace; repeat for several")
    parser.add_argument("--liveness", default=os.environ.get("SSVM_LIVENESS", "http://0.0.0.0:8080/healthz"), metavar="URL",
                        help="kopf liveness endpoint for the kubelet's probe (default: %(default)s; 'none' disables)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("SSVM_METRICS_PORT", "9090")), metavar="PORT",
                        help="Prometheus metrics port, 0 to disable (default: %(default)s)")
    parser.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR", help="address of the metrics server (default: %(default)s)")
    parser.add_argument("--scan-interval", type=float, default=float(os.environ.get("SSVM_SCAN_INTERVAL", "30")), metavar="SECONDS",
                        help="periodic safety scan of each zone, repairing drift no event announced (default: %(default)s)")
    parser.add_argument("--backend-override", default=os.environ.get("SSVM_BACKEND_OVERRIDE") or None, metavar="BACKEND",
                        help="run every zone's SSVMs on this backend instead of the zone's own: memory[:STATE_FILE] (tests, demos)")
    parser.add_argument("--log-level", default=os.environ.get("SSVM_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default: %(default)s)")
    parser.add_argument("--peering", default=None, metavar="NAME",
                        help="kopf peering object name for several replicas (default: standalone, one replica)")
    parser.add_argument("--priority", default=os.environ.get("SSVM_PRIORITY", "auto"), metavar="N|auto",
                        help="peering priority, the highest live replica works; 'auto' derives a distinct one from the "
                             "pod name (the host name and process id outside a pod), since kopf pauses every replica when "
                             "two share a priority (default: %(default)s)")
    parser.add_argument("--peering-lifetime", type=int, default=int(os.environ.get("SSVM_PEERING_LIFETIME", "15")),
                        metavar="SECONDS", help="how long a replica's keep-alive counts: a standby takes over this long after "
                                                "the active replica stopped renewing it (default: %(default)s)")


def peering_priority(value: str, pod_name: str | None = None, pid: int | None = None) -> int:
    """An explicit integer, or for 'auto' a number stable per pod (pods of one Deployment differ by name; two
    processes on one machine, outside pods, by process id)."""
    if value != "auto":
        return int(value)
    import hashlib
    import socket

    name = pod_name or os.environ.get("POD_NAME") or f"{socket.gethostname()}/{pid or os.getpid()}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 1_000_000_000 + 1


def run(args: argparse.Namespace) -> int:
    import kopf

    from ssvm_operator.controllers.registration import OperatorOptions, build_registry
    from ssvm_operator.model.redaction import RedactingFilter
    from ssvm_operator.settings import OperatorConfig

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:   # no private key block or Basic credentials ever reaches the log
        handler.addFilter(RedactingFilter())
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # paramiko logs a guest that is still booting (no banner yet) as an ERROR with a traceback; the
        # guest channel reports every failure itself, with a reason
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    if not 5 <= args.peering_lifetime <= 300:
        raise SystemExit("--peering-lifetime must be between 5 and 300 seconds")
    config = OperatorConfig(scan_interval=args.scan_interval, backend_override=args.backend_override,
                            peering_lifetime=args.peering_lifetime)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)
        logging.getLogger("ssvm_operator").info("metrics on %s:%d", args.metrics_address, args.metrics_port)
    liveness = None if args.liveness in ("", "none") else args.liveness
    asyncio.run(kopf.operator(
        registry=build_registry(OperatorOptions(config=config)),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=liveness,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=peering_priority(args.priority),
    ))
    return 0
