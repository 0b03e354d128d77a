"""Serve a Kubernetes API on 127.0.0.1 for demos and tests: the embedded dev cluster (default), or the
real control plane (etcd, kube-apiserver, kube-controller-manager built from their Go modules by
hack/build-control-plane.sh, which this builds once and caches).

The dev cluster behaves as a real API server where the operator and kubectl depend on it: discovery,
CRDs registered when applied (with schema defaults, pruning, validation and CEL rules),
resourceVersion conflicts, generation, the status subresource, watches, label selectors,
finalizers and owner-reference garbage collection. Once serving it prints `kubeconfig: <path>`
(and with `--control-plane real` a second line, `operator-kubeconfig: <path>`: the ServiceAccount
`ssvm-system/ssvm-operator`, authorised only by the RBAC you give it) and runs until SIGINT or
SIGTERM. Simulators of other controllers (KubeVirt, SSVM guests) run beside it unless
--no-simulators is given. Needs the `devcluster` extra: pip install '.[devcluster]'.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one; dev cluster only)")
    parser.add_argument("--kubeconfig", metavar="PATH", default=None,
                        help="where to write the kubeconfig (default: a new temporary directory)")
    parser.add_argument("--no-simulators", action="store_true", help="do not run the simulators of other controllers")
    parser.add_argument("--no-guests", action="store_true",
                        help="run the simulated guests elsewhere (python -m ssvm_devcluster.sim_guests), not in this process")
    parser.add_argument("--faults", metavar="SPEC", default=None,
                        help="inject API faults into the controllers' requests, e.g. 'conflict=0.05,error=0.02,throttle=0.02,"
                             "slow=0.1,slowSeconds=0.2,cutWatch=30,seed=1' (default: $SSVM_DEVCLUSTER_FAULTS, else none)")
    parser.add_argument("--control-range", metavar="CIDR", default=None,
                        help="loopback range of the simulated guests' control addresses (default: the first of "
                             "127.100.0.0/16..127.199.0.0/16 no other dev cluster on this machine holds)")
    parser.add_argument("--control-plane", choices=("dev", "real"), default="dev",
                        help="dev: the embedded emulation (starts at once); real: kube-apiserver, etcd and "
                             "kube-controller-manager (the first use builds them, several minutes)")


def selected_simulators(args: argparse.Namespace) -> list:
    from ssvm_devcluster.simulators import default_simulators

    if args.no_simulators:
        return []
    return [sim for sim in default_simulators() if not (args.no_guests and sim.name == "guests")]


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal
    import sys

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sims = selected_simulators(args)
    if args.control_range:
        from ssvm_devcluster.ranges import check_range

        try:
            cidr = check_range(args.control_range)
        except ValueError as e:
            print(f"devcluster: --control-range: {e}", file=sys.stderr)
            return 2
        for sim in sims:
            if getattr(sim, "name", "") == "kubevirt":
                sim.config.control_range = cidr

    async def until_signalled(serving) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serving(stop)

    try:
        if args.control_plane == "real":
            return _run_real(args, sims, until_signalled)
        from ssvm_devcluster.server import Running, serve

        def ready(running: Running) -> None:
            print(f"kubeconfig: {running.kubeconfig_path}", flush=True)

        from ssvm_devcluster.faults import FaultPlan

        try:
            faults = FaultPlan.parse(args.faults) if args.faults is not None else FaultPlan.from_env()
        except ValueError as e:
            print(f"devcluster: {e}", file=sys.stderr)
            return 2
        asyncio.run(until_signalled(lambda stop: serve(port=args.port, kubeconfig=args.kubeconfig, simulators=sims,
                                                       ready=ready, stop=stop, faults=faults)))
    except OSError as e:
        print(f"devcluster: cannot serve: {e}", file=sys.stderr)
        return 1
    return 0


def _run_real(args: argparse.Namespace, sims: list, until_signalled) -> int:
    import asyncio
    import pathlib
    import shutil
    import subprocess
    import sys

    from ssvm_devcluster.controlplane import ControlPlane
    from ssvm_devcluster.simulators import Endpoint, run_all

    if args.port:
        print("devcluster: --port applies to the dev cluster only (the real control plane takes free ports)", file=sys.stderr)
        return 2
    try:
        cp = ControlPlane().start()
    except (subprocess.CalledProcessError, RuntimeError, TimeoutError) as e:
        print(f"devcluster: the real control plane did not start: {e}", file=sys.stderr)
        return 1
    try:
        kubeconfig = cp.kubeconfig_path
        if args.kubeconfig:
            kubeconfig = pathlib.Path(args.kubeconfig)
            kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cp.kubeconfig_path, kubeconfig)
        print(f"kubeconfig: {kubeconfig}", flush=True)
        print(f"operator-kubeconfig: {cp.operator_kubeconfig_path}", flush=True)
        asyncio.run(until_signalled(lambda stop: run_all(sims, Endpoint.from_kubeconfig(cp.kubeconfig_path), stop)))
    finally:
        cp.stop()
    return 0
