"""Print, offline, what the operator would create for Zone, ImageStore and SecondaryStorageVM
manifests: the SSVMs each zone gets (the reconcile core's capacity rule), and for the kubevirt
backend their VirtualMachines and cloud-init Secrets. Manifests are admitted as the API server
would (schema, defaults, CEL); a refused one is reported field by field and nothing is printed.

Secret values are placeholders (the output is meant for reviews): private keys, passwords and
the agent's bytes never appear. Uids are placeholders too, so MAC addresses (derived from the
SSVM's uid) differ from the ones a cluster gets.

  ssvm-operator render -f examples/advanced-zone.yaml -f examples/secondarystoragevm.yaml
  ssvm-operator render -f examples/            # every *.yaml in the folder
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

import yaml

from ssvm_operator import constants as c
from ssvm_operator.api.crd import all_crds
from ssvm_operator.model.vm import BackendReadiness
from ssvm_operator.model.redaction import REDACTED
from ssvm_operator.controllers.ssvm.vm_request import build_vm_request
from ssvm_operator.controllers.zone.objects import zone_ssvm_object
from ssvm_operator.controllers.zone.capacity import plan_zone_capacity
from ssvm_operator.controllers.zone.readiness import evaluate_zone_readiness
from ssvm_operator.model.views import SSVMView, StoreView, ZoneView

PLACEHOLDER_HOST_KEY = "ssh-ed25519 <host-key-generated-by-the-operator>"
PLACEHOLDER_OPERATOR_KEY = "ssh-ed25519 <operator-public-key>"
OUR_API = c.API_VERSION


class RenderError(Exception):
    """Input the operator could not accept; each line names a manifest and a field."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Inputs:
    zones: list[dict[str, Any]] = field(default_factory=list)
    stores: list[dict[str, Any]] = field(default_factory=list)
    ssvms: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)   # admitted; they make no VM
    skipped: list[str] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                        help="manifest file, folder of *.yaml, or - for standard input (repeatable)")
    parser.add_argument("-n", "--namespace", default="default", help="namespace of manifests that set none (default: default)")


def _paths(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        path = pathlib.Path(name)
        if name != "-" and path.is_dir():
            out += sorted(str(p) for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            out.append(name)
    return out


def load_documents(names: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for name in _paths(names):
        try:
            text = sys.stdin.read() if name == "-" else pathlib.Path(name).read_text()
            loaded = list(yaml.safe_load_all(text))
        except (OSError, yaml.YAMLError) as e:
            raise RenderError([f"{name}: {e}"]) from None
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise RenderError([f"{name}: a document is not a Kubernetes object (no kind)"])
            docs.append((name, doc))
    return docs


def admit_documents(docs: list[tuple[str, dict[str, Any]]], namespace: str) -> Inputs:
    """Admits our kinds as the API server would; other kinds are skipped (listed in `skipped`)."""
    try:  # imported here: `ssvm-operator run` must not need the admission libraries
        import celpy  # noqa: F401 - admission evaluates the CEL rules with it
        from ssvm_operator.api.validation import admit
    except ImportError as e:
        raise RenderError([f"render checks CEL rules with cel-python ({e.name} is missing): "
                           "pip install 'ssvm-operator[render]'"]) from None
    schemas = {crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for crd in all_crds()}
    inputs, problems = Inputs(), []
    buckets = {c.ZONE_KIND: inputs.zones, c.IMAGESTORE_KIND: inputs.stores, c.SSVM_KIND: inputs.ssvms, c.TEMPLATE_KIND: inputs.templates}
    for source, doc in docs:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "<unnamed>")
        if doc.get("apiVersion") != OUR_API or kind not in schemas:
            inputs.skipped.append(f"{source}: {doc.get('apiVersion')} {kind}/{name}")
            continue
        stored, errors = admit(schemas[kind], doc)
        if errors:
            problems += [f"{source}: {kind}/{name}: {err}" for err in errors]
            continue
        stored.setdefault("metadata", {}).setdefault("namespace", namespace)
        buckets[kind].append(stored)
    if problems:
        raise RenderError(problems)
    return inputs


def placeholder_uid(kind: str, name: str) -> str:
    return f"<uid-of-{kind}/{name}>"


def vm_objects(zone: dict[str, Any], ssvm: dict[str, Any]) -> list[dict[str, Any]]:
    """The kubevirt backend's VirtualMachine and Secret for one SSVM, secrets as placeholders."""
    from ssvm_operator.backends.kubevirt.manifests import build_cloudinit_secret, build_virtual_machine
    from ssvm_operator.backends.kubevirt.userdata import AgentPayload, redact_user_data, render_cloud_config, user_data_document
    from ssvm_operator.backends.kubevirt.webhook import webhook_violations
    from ssvm_operator.model.bootargs import redact_boot_args

    meta, spec = ssvm["metadata"], ssvm["spec"]
    body = {**ssvm, "metadata": {**meta, "uid": placeholder_uid(c.SSVM_KIND, meta["name"])}}
    # the operator's own builder (labels, spec hash, boot arguments), keys as placeholders
    request = dataclasses.replace(build_vm_request(body, zone, spec.get("desiredState", "Running") == "Running"),
                                  host_public_key=PLACEHOLDER_HOST_KEY, host_private_key=REDACTED,
                                  operator_public_key=PLACEHOLDER_OPERATOR_KEY)
    boot_args = request.boot_args
    agent = AgentPayload.bundled()
    doc = user_data_document(boot_args=boot_args, host_private_key=REDACTED, host_public_key=PLACEHOLDER_HOST_KEY,
                             operator_public_key=PLACEHOLDER_OPERATOR_KEY, agent=agent, hostname=meta["name"][:63])
    user_data = render_cloud_config(redact_user_data(doc, redact_boot_args(boot_args)))
    vm = build_virtual_machine(request)
    problems = webhook_violations(vm)
    if problems:  # a bug of the builders, not of the input: say so plainly
        raise RenderError([f"VirtualMachine/{meta['name']}: {p}" for p in problems])
    return [vm, build_cloudinit_secret(request, agent, user_data=user_data)]


def render_objects(inputs: Inputs) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects to print, notes per zone), in input order of the zones."""
    objects: list[dict[str, Any]] = []
    notes: list[str] = []
    zones = {(z["metadata"]["namespace"], z["metadata"]["name"]): z for z in inputs.zones}
    for ssvm in inputs.ssvms:
        key = (ssvm["metadata"]["namespace"], ssvm["spec"]["zoneRef"])
        if key not in zones:
            notes.append(f"SecondaryStorageVM/{ssvm['metadata']['name']}: zone {key[1]} is not among the inputs; "
                         "its VM cannot be planned (the operator reports ZoneNotFound)")
    for (namespace, zone_name), zone in zones.items():
        view = ZoneView.from_body(zone)
        stores = [StoreView.from_body(s) for s in inputs.stores
                  if s["metadata"]["namespace"] == namespace and s["spec"]["zoneRef"] == zone_name]
        users = [s for s in inputs.ssvms if s["metadata"]["namespace"] == namespace and s["spec"]["zoneRef"] == zone_name]
        # Offline, the backend is assumed able to run VMs and to have the configured template.
        backend = BackendReadiness(can_run_vms=True, template_ready=view.template_configured, reason="AssumedOffline")
        readiness = evaluate_zone_readiness(view, stores, backend)
        plan = plan_zone_capacity(view, stores, [SSVMView.from_body(s) for s in users], ready=readiness.ready)
        if not readiness.ready:
            failure = readiness.first_failure()
            notes.append(f"Zone/{zone_name}: not ready ({failure.reason if failure else 'NotReady'}: "
                         f"{failure.message if failure else ''}); nothing would be created")
            continue
        zone_meta = {**zone["metadata"], "uid": placeholder_uid(c.ZONE_KIND, zone["metadata"]["name"])}
        planned = [zone_ssvm_object(zone_meta, create.name, create.role) for create in plan.creates]
        notes.append(f"Zone/{zone_name}: {len(stores)} image store(s), {len(users)} SSVM(s) given, "
                     f"{len(planned)} to create ({', '.join(f'{p.name} {p.role} for {p.reason}' for p in plan.creates) or 'none'})"
                     + (f"; {'; '.join(plan.notes)}" if plan.notes else ""))
        objects += planned
        for ssvm in planned + users:
            if view.backend == "kubevirt":
                objects += vm_objects(zone, ssvm)
        if view.backend != "kubevirt":
            notes.append(f"Zone/{zone_name}: backend {view.backend} creates no Kubernetes objects for its SSVMs")
    return objects, notes


def write_yaml(objects: list[dict[str, Any]], notes: list[str], out: TextIO) -> None:
    for note in notes:
        out.write(f"# {note}\n")
    from ssvm_operator.backends.kubevirt.userdata import dump_yaml_all

    out.write(dump_yaml_all(objects) if objects else "")


def run(args: argparse.Namespace) -> int:
    try:
        inputs = admit_documents(load_documents(args.filename), args.namespace)
        objects, notes = render_objects(inputs)
    except RenderError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    for skipped in inputs.skipped:
        print(f"render: skipped {skipped} (not an ssvm.io kind)", file=sys.stderr)
    write_yaml(objects, notes, sys.stdout)
    return 0
