"""The `ssvm-operator` command line.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
this file only wires them together, importing a module when its subcommand is used.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help). Modules are imported lazily so `crds` needs no kopf start-up.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ssvm_operator.commands.run", "run the operator against the current cluster"),
    "crds": ("ssvm_operator.commands.crds", "print the CustomResourceDefinitions as YAML"),
    "render": ("ssvm_operator.commands.render", "print what the operator would create for manifests, offline"),
    "devcluster": ("ssvm_devcluster.cli", "serve an embedded, emulated Kubernetes API for demos and tests"),
    "ssvm": ("ssvm_operator.commands.ssvm", "day-2 verbs on SSVMs: list, start, stop, reboot, recreate, check"),
    "zone": ("ssvm_operator.commands.zone", "a zone's status: conditions, SSVMs, stores and Events"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is absent
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssvm-operator",
        description=(
            "Kubernetes operator for Secondary Storage VMs (SSVMs), as Apache CloudStack's management "
            "server runs them: per Zone it keeps enough SSVMs for its ImageStores, programs them over "
            "SSH (NFS mounts, firewall, VM setup), checks their health and heals them."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if not _available(module_name):
            continue
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


def kubectl_plugin(argv: list[str] | None = None) -> int:
    """`kubectl ssvm ...` (an executable named kubectl-ssvm on PATH): `kubectl ssvm zone status z1` is
    `ssvm-operator zone status z1`; everything else is `ssvm-operator ssvm ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(argv if argv[:1] == ["zone"] else ["ssvm", *argv])


if __name__ == "__main__":
    sys.exit(main())
