"""Shared pieces of the API: camelCase models, CEL rule helpers, conditions, secret references."""
from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A spec or status block: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `fieldPath` makes the error name the offending field."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def immutable(name: str) -> dict[str, Any]:
    return validations(cel("self == oldSelf", f"{name} is immutable: delete and recreate the object to change it"))


# An OCI image reference ([registry[:port]/]repository[:tag][@digest], distribution's grammar), written for
# CEL's RE2 without backslashes: nothing a shell or a YAML line could carry fits it.
_DC = "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH = "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
OCI_REFERENCE_RULE = (f"^({_DC}([.]{_DC})*(:[0-9]+)?/)?{_PATH}(/{_PATH})*"
                      "(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")

# Shapes validated by patterns so that both kubectl's server and offline tools agree.
IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
IPV4_PATTERN = f"^{IPV4}$"
IPV4_CIDR_PATTERN = f"^{IPV4}/([0-9]|[12][0-9]|3[0-2])$"
IPV4_OR_CIDR_PATTERN = f"^{IPV4}(/([0-9]|[12][0-9]|3[0-2]))?$"
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOST_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$"


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace as the referring object."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_NAME_PATTERN, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                      description="Type of condition in CamelCase.")
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                        description="Programmatic identifier of the reason for the last transition, in CamelCase.")
    message: str = Field(default="", max_length=32768, description="Human-readable message with details about the transition.")
    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation the condition was set from.")
    last_transition_time: datetime.datetime = Field(description="Last time the condition changed from one status to another.")


CONDITIONS_EXTRA = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


def conditions_field(description: str) -> Any:
    return Field(default_factory=list, max_length=32, description=description, json_schema_extra=CONDITIONS_EXTRA)


class ObjectStatus(ApiModel):
    """What every kind's status carries."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status was computed from.")
    conditions: list[Condition] = conditions_field("Current state of the object; `Ready` summarises the others.")


ITEMS_EXTRA_KEY = "x-ssvm-items"


def item_rules(**schema: Any) -> dict[str, Any]:
    """Per-item constraints of a list field, merged into its `items` by the CRD builder."""
    return {ITEMS_EXTRA_KEY: schema}
