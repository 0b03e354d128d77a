"""Print the CustomResourceDefinitions of ssvm.io (Zone, ImageStore, SecondaryStorageVM) as YAML.

They are generated from the operator's pydantic models, the same way as the files in crds/.
Install them with:  ssvm-operator crds | kubectl apply -f -
"""
from __future__ import annotations

import argparse
import sys

import yaml

from ssvm_operator.api.crd import all_crds


class _Dumper(yaml.SafeDumper):
    """Block-style YAML whose multi-line strings stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(doc: object) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def render_crds() -> str:
    return "---\n".join(dump_yaml(crd) for crd in all_crds())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: the output is fully determined by the models


def run(args: argparse.Namespace) -> int:
    del args
    sys.stdout.write(render_crds())
    return 0
