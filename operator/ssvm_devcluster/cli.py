"""Serve an embedded, emulated Kubernetes API on 127.0.0.1 for demos and tests.

It behaves as a real API server where the operator and kubectl depend on it: discovery, CRDs
registered when applied (with schema defaults, pruning, validation and CEL rules),
resourceVersion conflicts, generation, the status subresource, watches, label selectors,
finalizers and owner-reference garbage collection. Once serving it prints one line,
`kubeconfig: <path>`, and runs until SIGINT or SIGTERM. Simulators of other controllers run
inside it unless --no-simulators is given. Needs the `devcluster` extra: pip install '.[devcluster]'.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--kubeconfig", metavar="PATH", default=None,
                        help="where to write the kubeconfig (default: a new temporary directory)")
    parser.add_argument("--no-simulators", action="store_true", help="do not run the simulators of other controllers")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal
    import sys

    from ssvm_devcluster.server import Running, serve
    from ssvm_devcluster.simulators import default_simulators

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(running: Running) -> None:
            print(f"kubeconfig: {running.kubeconfig_path}", flush=True)

        sims = [] if args.no_simulators else default_simulators()
        await serve(port=args.port, kubeconfig=args.kubeconfig, simulators=sims, ready=ready, stop=stop)

    try:
        asyncio.run(main())
    except OSError as e:
        print(f"devcluster: cannot serve: {e}", file=sys.stderr)
        return 1
    return 0
