"""Builds the CustomResourceDefinitions from the pydantic models (the models are the single source)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ssvm_operator import constants as c
from ssvm_operator.api.base import ITEMS_EXTRA_KEY
from ssvm_operator.api.imagestore import ImageStore
from ssvm_operator.api.ssvm import SecondaryStorageVM
from ssvm_operator.api.template import ImageTemplate
from ssvm_operator.api.zone import Zone

READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class KindInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    short: str
    columns: tuple[dict[str, Any], ...]
    name_max: int | None = None   # longest metadata.name: the name becomes a label value or a host name
    name_why: str = ""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{c.GROUP}"


def _col(name: str, path: str, type_: str = "string", priority: int = 0, description: str = "") -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


AGE = _col("Age", ".metadata.creationTimestamp", "date")

KINDS: tuple[KindInfo, ...] = (
    KindInfo(Zone, c.ZONE_KIND, c.ZONE_PLURAL, c.ZONE_SHORT, (
        _col("Ready", READY, description="Whether the zone is ready and has its SSVMs."),
        _col("Backend", ".spec.secondaryStorage.backend"),
        _col("Desired", ".status.desiredSSVMs", "integer", description="SSVMs the zone should have."),
        _col("Running", ".status.runningSSVMs", "integer", description="SSVMs running."),
        _col("Stores", ".status.imageStores", "integer", description="Image stores of the zone."),
        _col("Network", ".spec.networkType", priority=1),
        AGE,
    ), name_max=63, name_why="it is the value of the ssvm.io/zone label on its SSVMs and VMs"),
    KindInfo(ImageStore, c.IMAGESTORE_KIND, c.IMAGESTORE_PLURAL, c.IMAGESTORE_SHORT, (
        _col("Zone", ".spec.zoneRef"),
        _col("Protocol", ".spec.protocol"),
        _col("URL", ".spec.url"),
        _col("ReadOnly", ".spec.readOnly", "boolean", priority=1),
        _col("Ready", READY),
        AGE,
    )),
    KindInfo(SecondaryStorageVM, c.SSVM_KIND, c.SSVM_PLURAL, c.SSVM_SHORT, (
        _col("Zone", ".spec.zoneRef"),
        _col("Role", ".spec.role"),
        _col("State", ".status.state"),
        _col("Ready", READY),
        _col("Public-IP", ".status.nics.public.ip"),
        _col("Control-IP", ".status.nics.control.ip", priority=1),
        _col("Healthy", ".status.health.healthy", "boolean", priority=1, description="Whether the last health check passed."),
        _col("Last-Check", ".status.health.lastCheckTime", "date", priority=1,
             description="When a health check last ran (rewritten at least every 10 minutes while checks run)."),
        AGE,
    ), name_max=63, name_why="it is its VM's host name and the value of the ssvm.io/ssvm label"),
    KindInfo(ImageTemplate, c.TEMPLATE_KIND, c.TEMPLATE_PLURAL, c.TEMPLATE_SHORT, (
        _col("Ready", READY, description="Whether the template is on every store it must be on."),
        _col("Progress", ".status.progress", description="Overall download progress."),
        _col("Stores", ".status.storesReady", description="Stores holding it / stores it must be on."),
        _col("Format", ".spec.format", priority=1),
        _col("URL", ".spec.url", priority=1),
        AGE,
    ), name_max=63, name_why="it names its directory on the image stores"),
)

_DROP_KEYS = {"title", "additionalProperties"}


def _is_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null"


def _to_structural(schema: dict[str, Any], defs: dict[str, Any], *, optional: bool = False) -> dict[str, Any]:
    """Inline $refs, fold Optional (anyOf with null) and drop what structural schemas do not allow."""
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        target = defs[schema.pop("$ref").split("/")[-1]]
        merged = {**copy.deepcopy(target), **schema}
        return _to_structural(merged, defs, optional=optional)
    if "anyOf" in schema:
        choices = [s for s in schema.pop("anyOf") if not _is_null(s)]
        if len(choices) != 1:
            raise ValueError(f"unions are not structural: {choices}")
        inner = choices[0]
        outer_extras = {k: v for k, v in schema.items() if k != "default" or v is not None}
        # Keys on the Optional wrapper (description, CEL rules) win over the inner type's own.
        merged = {**copy.deepcopy(inner if "$ref" not in inner else {**defs[inner["$ref"].split("/")[-1]]}),
                  **{k: v for k, v in inner.items() if k != "$ref"}}
        if "x-kubernetes-validations" in merged and "x-kubernetes-validations" in outer_extras:
            outer_extras["x-kubernetes-validations"] = merged["x-kubernetes-validations"] + outer_extras["x-kubernetes-validations"]
        merged.update(outer_extras)
        return _to_structural(merged, defs, optional=True)
    if schema.get("default", "absent") is None:
        schema.pop("default")
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            required = set(schema.get("required", []))
            props = {}
            for name, sub in value.items():
                prop = _to_structural(sub, defs)
                # Non-optional nested objects default to {} so their own fields' defaults apply.
                if (prop.get("type") == "object" and "properties" in prop and "default" not in prop
                        and name not in required and not _was_optional(sub)):
                    prop["default"] = {}
                props[name] = prop
            out["properties"] = props
        elif key == "items":
            out["items"] = _to_structural(value, defs)
        else:
            out[key] = value
    return out


def _was_optional(schema: dict[str, Any]) -> bool:
    return any(_is_null(s) for s in schema.get("anyOf", []))


def _merge_items_extra(schema: dict[str, Any]) -> dict[str, Any]:
    """Fold per-item constraints given with `item_rules` into the list's `items`."""
    extra = schema.pop(ITEMS_EXTRA_KEY, None)
    if extra:
        schema["items"] = {**schema.get("items", {}), **extra}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _merge_items_extra(schema["items"])
    for name, sub in schema.get("properties", {}).items():
        schema["properties"][name] = _merge_items_extra(sub)
    return schema


def openapi_schema(info: KindInfo) -> dict[str, Any]:
    raw = info.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    body = _merge_items_extra(_to_structural(raw, defs))
    for name, sub in body["properties"].items():
        sub.setdefault("description", f"{name} of the {info.kind}.")
    body["properties"] = {
        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
        "kind": {"type": "string", "description": "Kind of this object."},
        "metadata": {"type": "object"},
        **body["properties"],
    }
    if info.name_max:
        # kube-apiserver lets root rules read metadata.name; declaring it makes the error name the field
        body["properties"]["metadata"] = {"type": "object", "properties": {"name": {"type": "string"}}}
        body["x-kubernetes-validations"] = [{
            "rule": f"self.metadata.name.size() <= {info.name_max}", "fieldPath": ".metadata.name",
            "message": f"a {info.kind} name has at most {info.name_max} characters: {info.name_why}"}]
    body["description"] = (info.model.__doc__ or info.kind).strip().splitlines()[0]
    spec = body["properties"]["spec"]
    if spec.get("required"):
        body["required"] = ["spec"]
    else:
        spec.setdefault("default", {})
    return body


def build_crd(info: KindInfo) -> dict[str, Any]:
    spec_model = info.model.model_fields["spec"].annotation
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "labels": {"app.kubernetes.io/name": "ssvm-operator",
                                                       "app.kubernetes.io/part-of": "ssvm-operator"}},
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": [info.short],
                "categories": [c.CATEGORY],
            },
            "versions": [{
                "name": c.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": list(info.columns),
                "schema": {"openAPIV3Schema": openapi_schema(info)},
            }],
        },
    } if spec_model is not None else {}


def all_crds() -> list[dict[str, Any]]:
    return [build_crd(info) for info in KINDS]


def kind_info(kind: str) -> KindInfo:
    for info in KINDS:
        if info.kind == kind:
            return info
    raise KeyError(kind)
