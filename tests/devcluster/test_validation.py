"""A CRD's schema at work: types, enums, patterns, formats, required, min/max, maxItems,
defaulting, pruning of unknown fields (fieldValidation Ignore/Warn/Strict), CEL rules with oldSelf."""
from __future__ import annotations

import asyncio

import pytest

from tests.devcluster.helpers import widget, widgets_path


def causes(body: dict) -> dict[str, str]:
    assert body.get("reason") == "Invalid", body
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


# A type, enum, required, maxLength or maxItems failure anywhere stops every CEL rule, and says so.
NOT_CHECKED = {"<nil>": "Invalid value: null: some validation rules were not checked because the object was invalid; "
                        "correct the existing errors to complete validation"}


@pytest.mark.parametrize("spec,expected", [
    ({"size": "three"}, {"spec.size": 'Invalid value: "string": spec.size in body must be of type integer: "string"', **NOT_CHECKED}),
    ({"size": 1, "shape": "oval"}, {"spec.shape": 'Unsupported value: "oval": supported values: "round", "square"', **NOT_CHECKED}),
    ({"size": 1, "url": "http://h/x"}, {"spec.url": "Invalid value: \"http://h/x\": spec.url in body should match '^nfs://[^/]+/.+'"}),
    ({"size": -1}, {"spec.size": "Invalid value: -1: spec.size in body should be greater than or equal to 0"}),
    ({"size": 1, "maxSize": 101}, {"spec.maxSize": "Invalid value: 101: spec.maxSize in body should be less than or equal to 100"}),
    ({"size": 1, "tags": ["a", "b", "c", "d"]}, {"spec.tags": "Too many: 4: must have at most 3 items", **NOT_CHECKED}),
    ({"size": 1, "tags": ["waytoolongtag"]}, {"spec.tags[0]": "Too long: may not be more than 10 bytes", **NOT_CHECKED}),
    ({}, {"spec.size": "Required value", **NOT_CHECKED}),
    # a rule's refusal shows a scalar's value and leaves an object's out
    ({"size": 1, "cidr": "0.0.0.0/0"}, {"spec.cidr": 'Invalid value: "0.0.0.0/0": must be a CIDR, not 0.0.0.0/x'}),
    ({"size": 1, "cidr": "10.0.0.300/8"}, {"spec.cidr": 'Invalid value: "10.0.0.300/8": must be a CIDR, not 0.0.0.0/x'}),
    ({"size": 6}, {"spec.size": "Invalid value: size must not exceed maxSize"}),
    # a non-blocking schema failure lets the rules run: both are reported
    ({"size": 150, "maxSize": 101}, {"spec.maxSize": "Invalid value: 101: spec.maxSize in body should be less than or equal to 100",
                                   "spec.size": "Invalid value: size must not exceed maxSize"}),
])
async def test_bad_values_are_refused_with_the_servers_messages(http, ns, spec, expected):
    body = widget("v")
    body["spec"] = spec
    status, refused = await http.post(widgets_path(ns), body)
    assert status == 422, refused
    assert causes(refused) == expected
    texts = [f"{field}: {message}" for field, message in expected.items()]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    assert refused["message"] == f'Widget.test.ssvm.io "v" is invalid: {joined}'


async def test_defaults_are_filled(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("dflt"))
    assert obj["spec"] == {"size": 1, "maxSize": 5, "shape": "round"}
    status, obj = await http.patch(widgets_path(ns, "dflt"), {"spec": {"maxSize": None}})
    assert obj["spec"]["maxSize"] == 5  # a removed defaulted field comes back


async def test_unknown_fields_are_pruned_or_refused_by_field_validation(http, ns):
    body = widget("prune", unknown=1, extra={"free": {"form": True}})
    body["junk"] = "x"
    status, obj = await http.post(widgets_path(ns), body, fieldValidation="Ignore")
    assert status == 201 and "unknown" not in obj["spec"] and "junk" not in obj
    assert obj["spec"]["extra"] == {"free": {"form": True}}  # x-kubernetes-preserve-unknown-fields
    status, refused = await http.post(widgets_path(ns), {**body, "metadata": {"name": "prune2"}}, fieldValidation="Strict")
    assert status == 400 and 'unknown field "spec.unknown"' in refused["message"]
    async with http.session.post(http.url + widgets_path(ns), json={**body, "metadata": {"name": "prune3"}},
                                 params={"fieldValidation": "Warn"}) as resp:
        assert resp.status == 201
        assert any("unknown field \\\"junk\\\"" in w for w in resp.headers.getall("Warning"))


async def test_transition_rules_use_old_self(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("imm", shape="square"))
    assert status == 201
    status, refused = await http.patch(widgets_path(ns, "imm"), {"spec": {"shape": "round"}})
    assert status == 422 and causes(refused) == {"spec": "Invalid value: shape is immutable"}
    status, ok = await http.patch(widgets_path(ns, "imm"), {"spec": {"size": 2}})
    assert status == 200


async def test_metadata_name_is_validated(http, ns):
    status, refused = await http.post(widgets_path(ns), widget("Not_A_Name"))
    assert status == 422 and "metadata.name" in causes(refused)


async def test_formats_are_checked(http, ns):
    await http.post(widgets_path(ns), widget("fmt"))
    bad = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}]}}
    status, refused = await http.patch(widgets_path(ns, "fmt", "status"), bad)
    assert status == 422
    # a status write is judged against the status schema: its messages name fields from the status down
    assert causes(refused) == {"status.conditions[0].lastTransitionTime":
                               'Invalid value: "yesterday": conditions[0].lastTransitionTime in body must be of type date-time: "yesterday"',
                               **NOT_CHECKED}
    good = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"}]}}
    status, _ = await http.patch(widgets_path(ns, "fmt", "status"), good)
    assert status == 200


async def test_list_map_keys_must_be_unique(http, ns):
    await http.post(widgets_path(ns), widget("dupcond"))
    twice = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]}}
    status, refused = await http.patch(widgets_path(ns, "dupcond", "status"), twice)
    assert status == 422 and causes(refused) == {"status.conditions[1]": 'Duplicate value: {"type":"Ready"}'}
    assert refused["details"]["causes"][0]["reason"] == "FieldValueDuplicate"


RATCHETS_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ratchets.test.ssvm.io}
spec:
  group: test.ssvm.io
  scope: Namespaced
  names: {plural: ratchets, singular: ratchet, kind: Ratchet, listKind: RatchetList}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cidr: {type: string%s}
              size: {type: integer}
          status: {type: object, properties: {phase: {type: string}}}
"""
CIDR_RULE = """, x-kubernetes-validations: [{rule: "!self.startsWith('0.0.0.0/')", message: "not 0.0.0.0/x"}]"""


async def test_rule_errors_on_unchanged_values_are_ratcheted(http, ns, kubectl):
    """A value stored before its rule existed blocks no other write (the server ratchets the rule's error
    on an unchanged value); changing that value to another bad one is refused."""
    path = "/apis/test.ssvm.io/v1alpha1/namespaces/%s/ratchets" % ns
    kubectl("apply", "-f", "-", input=RATCHETS_CRD % "")
    await wait_until_served(http, path)
    status, _ = await http.post(path, {"apiVersion": "test.ssvm.io/v1alpha1", "kind": "Ratchet", "metadata": {"name": "old"},
                                       "spec": {"cidr": "0.0.0.0/0", "size": 1}})
    assert status == 201
    kubectl("apply", "-f", "-", input=RATCHETS_CRD % CIDR_RULE)
    probe = {"apiVersion": "test.ssvm.io/v1alpha1", "kind": "Ratchet", "metadata": {"name": "probe"}, "spec": {"cidr": "0.0.0.0/8"}}
    for _ in range(100):   # the server applies a changed CRD within moments
        status, refused = await http.post(path, probe, dryRun="All")
        if status == 422:
            break
        await asyncio.sleep(0.1)
    assert status == 422 and causes(refused) == {"spec.cidr": 'Invalid value: "0.0.0.0/8": not 0.0.0.0/x'}
    status, obj = await http.patch(f"{path}/old", {"spec": {"size": 2}})
    assert status == 200 and obj["spec"] == {"cidr": "0.0.0.0/0", "size": 2}
    status, _ = await http.patch(f"{path}/old/status", {"status": {"phase": "Seen"}})
    assert status == 200
    status, refused = await http.patch(f"{path}/old", {"spec": {"cidr": "0.0.0.0/1"}})
    assert status == 422 and causes(refused) == {"spec.cidr": 'Invalid value: "0.0.0.0/1": not 0.0.0.0/x'}


async def wait_until_served(http, path: str) -> None:
    for _ in range(100):
        status, _ = await http.get(path)
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} not served")
