"""Decoding of the protobuf bodies kubectl sends for a few built-in kinds (`kubectl create
namespace|configmap|secret` use typed clients that always send protobuf). Answers are JSON.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ssvm_devcluster import errors

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, Any]]:
    """Wire-level (field number, value) pairs; length-delimited values stay bytes."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, value))
    return out


def _map(entries: list[bytes], binary: bool = False) -> dict[str, Any]:
    result = {}
    for entry in entries:
        kv = dict(fields(entry))
        key = kv.get(1, b"").decode()
        value = kv.get(2, b"")
        result[key] = base64.b64encode(value).decode() if binary else value.decode()
    return result


def _meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    labels, annotations, finalizers, owners = [], [], [], []
    for num, value in fields(data):
        if num in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[num]] = value.decode()
        elif num == 6:
            meta["resourceVersion"] = value.decode()
        elif num == 11:
            labels.append(value)
        elif num == 12:
            annotations.append(value)
        elif num == 14:
            finalizers.append(value.decode())
        elif num == 13:
            ref = dict(fields(value))
            owners.append({"kind": ref.get(1, b"").decode(), "name": ref.get(3, b"").decode(),
                           "uid": ref.get(4, b"").decode(), "apiVersion": ref.get(5, b"").decode(),
                           **({"controller": bool(ref[6])} if 6 in ref else {}),
                           **({"blockOwnerDeletion": bool(ref[7])} if 7 in ref else {})})
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    if finalizers:
        meta["finalizers"] = finalizers
    if owners:
        meta["ownerReferences"] = owners
    return meta


def _collect(data: bytes) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for num, value in fields(data):
        grouped.setdefault(num, []).append(value)
    return grouped


def _namespace(f: dict[int, list[Any]]) -> dict[str, Any]:
    return {}


def _configmap(f: dict[int, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if 2 in f:
        out["data"] = _map(f[2])
    if 3 in f:
        out["binaryData"] = _map(f[3], binary=True)
    if 4 in f:
        out["immutable"] = bool(f[4][0])
    return out


def _secret(f: dict[int, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if 2 in f:
        out["data"] = _map(f[2], binary=True)
    if 3 in f:
        out["type"] = f[3][0].decode()
    if 4 in f:
        out["stringData"] = _map(f[4])
    if 5 in f:
        out["immutable"] = bool(f[5][0])
    return out


_KINDS: dict[str, Callable[[dict[int, list[Any]]], dict[str, Any]]] = {
    "Namespace": _namespace, "ConfigMap": _configmap, "Secret": _secret, "ServiceAccount": _namespace,
}


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the k8s envelope")
    envelope = _collect(body[len(MAGIC):])
    type_meta = dict(fields(envelope.get(1, [b""])[0]))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    if kind not in _KINDS:
        raise errors.unsupported_media("application/vnd.kubernetes.protobuf")
    obj_fields = _collect(envelope.get(2, [b""])[0])
    obj = {"apiVersion": api_version, "kind": kind, "metadata": _meta(obj_fields.get(1, [b""])[0])}
    obj.update(_KINDS[kind](obj_fields))
    return obj
