"""Shared helpers of the KubeVirt backend tests: admitted example zones, VM requests, schemas."""
from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema

from ssvm_operator.api.crd import all_crds
from ssvm_operator.api.validation import admit
from ssvm_operator.model.vm import VMRequest
from ssvm_operator.model.bootargs import build_boot_args
from ssvm_operator.ssh.keys import KeyPair, generate_keypair
from tests.manifests import ROOT, example_documents

SCHEMAS = ROOT.parent / "shared" / "schemas"


@functools.cache
def shared_schema(rel: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / rel).read_text())


def schema_errors(rel: str, obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(shared_schema(rel))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    for crd in all_crds():
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def example(kind: str, name: str) -> dict[str, Any]:
    for _, doc in example_documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return copy.deepcopy(doc)
    raise KeyError((kind, name))


def admitted_zone_spec(doc: dict[str, Any]) -> dict[str, Any]:
    stored, errors = admit(crd_schema("Zone"), doc)
    assert not errors, errors
    return stored["spec"]


@functools.cache
def keys() -> tuple[KeyPair, KeyPair]:
    """(host key, operator key), generated once per test run."""
    return generate_keypair("host"), generate_keypair("operator")


def make_request(zone_doc: dict[str, Any], *, name: str = "zone1-ssvm-1", uid: str = "0c5e5a0e-0000-4000-8000-000000000001",
                 namespace: str = "default", running: bool = True, ssvm_spec: dict[str, Any] | None = None,
                 role: str = "templateProcessor", vm_password: str | None = None) -> VMRequest:
    zone_spec = admitted_zone_spec(zone_doc)
    host, operator = keys()
    zone_name = zone_doc["metadata"]["name"]
    return VMRequest(
        namespace=namespace, name=name, uid=uid, zone_name=zone_name, role=role, running=running,
        zone_spec=zone_spec, ssvm_spec=ssvm_spec or {"zoneRef": zone_name, "role": role},
        boot_args=build_boot_args(name=name, zone_name=zone_name, role=role, zone_spec=zone_spec, vm_password=vm_password),
        host_public_key=host.public_openssh, host_private_key=host.private_openssh,
        operator_public_key=operator.public_openssh)
