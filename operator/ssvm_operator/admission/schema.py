"""A CRD's `openAPIV3Schema` applied as kube-apiserver applies it: null-pruning, defaulting,
pruning of unknown fields, then validation with the server's error messages (CEL rules in `cel`).
"""
from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import re
import uuid
from typing import Any

from ssvm_operator.admission import cel

ROOT_FIELDS = {"apiVersion", "kind", "metadata"}
NO_OLD_OBJECT = _NO_CHECK = object()  # "no old object": transition rules are skipped


def _is_nullable(schema: dict[str, Any]) -> bool:
    return bool(schema.get("nullable"))


def _preserves(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _props(schema: dict[str, Any]) -> dict[str, Any]:
    props = dict(schema.get("properties") or {})
    if schema.get("x-kubernetes-embedded-resource"):
        for f in ROOT_FIELDS:
            props.setdefault(f, {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                             if f == "metadata" else {"type": "string"})
    return props


def default_and_prune(value: Any, schema: dict[str, Any], path: str, unknown: list[str], root: bool = False) -> Any:
    """Drop nulls of non-nullable fields, fill `default`s, drop (and report) undeclared fields."""
    if not schema:
        return value
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema or root):
        props = _props(schema)
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key)
            if root and key in ROOT_FIELDS:
                out[key] = item
                continue
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if _preserves(schema) or extra is True:
                    out[key] = item
                else:
                    unknown.append(f"{path}.{key}" if path else key)
                continue
            if item is None and not _is_nullable(sub):
                continue  # the server prunes nulls of non-nullable fields, then defaults them
            out[key] = default_and_prune(item, sub, f"{path}.{key}" if path else key, unknown)
        for key, sub in props.items():
            if key not in out and isinstance(sub, dict) and "default" in sub and not (root and key in ROOT_FIELDS):
                out[key] = default_and_prune(copy.deepcopy(sub["default"]), sub, f"{path}.{key}" if path else key, [])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default_and_prune(v, schema["items"], f"{path}[{i}]", unknown) for i, v in enumerate(value)]
    return value


# --- validation ---

def _q(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return "null"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, typ: str) -> bool:
    match typ:
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool) or (
                isinstance(value, float) and value.is_integer())
        case "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def _invalid(field: str, value: Any, msg: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return _cause(reason, field, f"Invalid value: {_q(value)}: {msg}")


# As in kube-apiserver: one of these anywhere in the object and no CEL rule runs (rules may assume types,
# required fields and bounded sizes); the refusal then says so in a cause of its own.
_BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
                       "FieldValueTypeInvalid"})
RULES_NOT_CHECKED = _cause("FieldValueInvalid", "<nil>", "Invalid value: null: some validation rules were not checked because "
                           "the object was invalid; correct the existing errors to complete validation")
_RULES_FOUND: dict[tuple[int, bool], tuple[dict[str, Any], bool]] = {}


def has_rules(schema: Any, transition: bool = False) -> bool:
    """Whether any node of the schema carries x-kubernetes-validations (with `transition`: a rule using
    oldSelf), remembered per schema object."""
    if not isinstance(schema, dict):
        return False
    seen = _RULES_FOUND.get((id(schema), transition))
    if seen is not None and seen[0] is schema:
        return seen[1]
    found = _search_rules(schema, transition)
    if len(_RULES_FOUND) > 512:   # schemas replaced by CRD updates are not remembered forever
        _RULES_FOUND.clear()
    _RULES_FOUND[(id(schema), transition)] = (schema, found)
    return found


def _search_rules(node: Any, transition: bool = False) -> bool:
    if isinstance(node, dict):
        rules = node.get("x-kubernetes-validations")
        if isinstance(rules, list) and rules and (not transition or any(
                cel.is_transition(r.get("rule", "")) for r in rules if isinstance(r, dict))):
            return True
        return any(_search_rules(v, transition) for k, v in node.items() if k != "x-kubernetes-validations")
    if isinstance(node, list):
        return any(_search_rules(v, transition) for v in node)
    return False


def _format_ok(fmt: str, value: str) -> bool:
    try:
        match fmt:
            case "ipv4":
                ipaddress.IPv4Address(value)
            case "ipv6":
                ipaddress.IPv6Address(value)
            case "cidr":
                ipaddress.ip_network(value, strict=False)
                return "/" in value
            case "uuid" | "uuid3" | "uuid4" | "uuid5":
                uuid.UUID(value)
            case "byte":
                base64.b64decode(value, validate=True)
            case "date":
                datetime.date.fromisoformat(value)
            case "date-time" | "datetime":
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            case "hostname":
                return bool(re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                                         r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", value))
            case "mac":
                return bool(re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", value))
            case "email":
                return bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value))
            case "uri":
                return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value))
    except ValueError:
        return False
    return True


def validate(value: Any, schema: dict[str, Any], path: str, old: Any = _NO_CHECK, root: bool = False) -> list[dict[str, str]]:
    """Causes (reason, message, field) for `value` against `schema`; `old` feeds CEL's oldSelf. As in
    kube-apiserver, the schema's causes come first, then those of the CEL rules, which run only when
    no blocking cause was found anywhere."""
    rule_causes: list[dict[str, str]] = []
    causes = _validate(value, schema, path, old, root, rule_causes)
    if has_rules(schema):
        causes += [RULES_NOT_CHECKED] if any(c["reason"] in _BLOCKING for c in causes) else rule_causes
    return causes


def validate_status(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
    """A write to the status subresource as kube-apiserver judges it: the status against the status
    schema (messages name fields from the status down, causes from `status.`), then the CEL rules of
    the whole object, unless a blocking cause was found."""
    status_schema = _props(schema).get("status")
    causes: list[dict[str, str]] = []
    if "status" in obj and isinstance(status_schema, dict):
        for cause in _validate(obj["status"], status_schema, "", (old or {}).get("status", _NO_CHECK), False, []):
            field = cause["field"]
            causes.append({**cause, "field": "status" if field == "<root>" else f"status.{field}"})
    if has_rules(schema):
        if any(c["reason"] in _BLOCKING for c in causes):
            causes.append(RULES_NOT_CHECKED)
        else:
            rule_causes: list[dict[str, str]] = []
            _validate(obj, schema, "", old, True, rule_causes, rules_only=True)
            causes += rule_causes
    return causes


def _validate(value: Any, schema: dict[str, Any], path: str, old: Any, root: bool,
              rule_causes: list[dict[str, str]], unchanged: bool = False, rules_only: bool = False) -> list[dict[str, str]]:
    """`unchanged`: an ancestor equals its old value. As kube-apiserver ratchets (1.30+), the errors of rules
    without oldSelf on an unchanged value are dropped, so they are not evaluated; `rules_only` skips the
    schema's own checks where only rule causes are wanted."""
    if not schema:
        return []
    unchanged = unchanged or (old is not _NO_CHECK and value == old)
    if rules_only and (not has_rules(schema) or (unchanged and not has_rules(schema, transition=True))):
        return []
    causes: list[dict[str, str]] = []
    field = path or "<root>"
    if value is None:
        if _is_nullable(schema):
            return []
        if "type" in schema:
            return [_invalid(field, None, f"{field} in body must be of type {schema['type']}: \"null\"", "FieldValueTypeInvalid")]
        return []
    typ = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            return [_invalid(field, _type_name(value), f"{field} in body must be of type integer,string: {_q(_type_name(value))}",
                             "FieldValueTypeInvalid")]
    elif typ and not _type_ok(value, typ):
        return [_invalid(field, _type_name(value), f"{field} in body must be of type {typ}: {_q(_type_name(value))}",
                         "FieldValueTypeInvalid")]

    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_q(v) for v in schema["enum"])
        causes.append(_cause("FieldValueNotSupported", field, f"Unsupported value: {_q(value)}: supported values: {allowed}"))
    if isinstance(value, str):
        causes += _validate_string(value, schema, field)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        causes += _validate_number(value, schema, field)
    elif isinstance(value, list):
        causes += _validate_array(value, schema, field, path, old, rule_causes, unchanged, rules_only)
    elif isinstance(value, dict):
        causes += _validate_object(value, schema, field, path, old, root, rule_causes, unchanged, rules_only)
    for key in ("allOf", "anyOf", "oneOf"):
        subs = schema.get(key) or []
        results = [_validate(value, {**s, "type": s.get("type", typ)}, path, old, False, []) for s in subs]
        if key == "allOf":
            causes += [c for r in results for c in r]
        elif key == "anyOf" and subs and all(results):
            causes.append(_invalid(field, value, f"{field} in body must match at least one schema in anyOf"))
        elif key == "oneOf" and subs and sum(1 for r in results if not r) != 1:
            causes.append(_invalid(field, value, f"{field} in body must match exactly one schema in oneOf"))
    if "not" in schema and not _validate(value, schema["not"], path, old, False, []):
        causes.append(_invalid(field, value, f"{field} in body must not validate the schema (not)"))
    if schema.get("x-kubernetes-validations"):
        rule_causes += cel.check_rules(schema, value, old if old is not _NO_CHECK else cel.NO_OLD, path,
                                       transition_only=unchanged)
    return causes


def _pattern_matches(pattern: str, value: str) -> bool:
    """RE2, as kube-apiserver matches: `$` is the end of the text (Python's `re` also matches before a final newline)."""
    import re2   # google-re2, which cel-python brings

    return re2.search(pattern, value) is not None


def _validate_string(value: str, schema: dict[str, Any], field: str) -> list[dict[str, str]]:
    causes = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(_cause("FieldValueTooLong", field, f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(_invalid(field, value, f"{field} in body should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and not _pattern_matches(schema["pattern"], value):
        causes.append(_invalid(field, value, f"{field} in body should match '{schema['pattern']}'"))
    fmt = schema.get("format")
    if fmt and not _format_ok(fmt, value):
        causes.append(_invalid(field, value, f"{field} in body must be of type {fmt}: {_q(value)}",
                               "FieldValueTypeInvalid"))
    return causes


def _validate_number(value: float, schema: dict[str, Any], field: str) -> list[dict[str, str]]:
    causes = []
    if "maximum" in schema:
        if schema.get("exclusiveMaximum") and value >= schema["maximum"]:
            causes.append(_invalid(field, value, f"{field} in body should be less than {schema['maximum']}"))
        elif value > schema["maximum"]:
            causes.append(_invalid(field, value, f"{field} in body should be less than or equal to {schema['maximum']}"))
    if "minimum" in schema:
        if schema.get("exclusiveMinimum") and value <= schema["minimum"]:
            causes.append(_invalid(field, value, f"{field} in body should be greater than {schema['minimum']}"))
        elif value < schema["minimum"]:
            causes.append(_invalid(field, value, f"{field} in body should be greater than or equal to {schema['minimum']}"))
    if "multipleOf" in schema and schema["multipleOf"] and (value / schema["multipleOf"]) % 1:
        causes.append(_invalid(field, value, f"{field} in body should be a multiple of {schema['multipleOf']}"))
    return causes


def _validate_array(value: list[Any], schema: dict[str, Any], field: str, path: str, old: Any,
                    rule_causes: list[dict[str, str]], unchanged: bool, rules_only: bool) -> list[dict[str, str]]:
    causes = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(_cause("FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(_invalid(field, len(value), f"{field} in body should have at least {schema['minItems']} items"))
    list_type = schema.get("x-kubernetes-list-type")
    map_keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    old_by_key: dict[str, Any] = {}
    if list_type == "map" and isinstance(old, list):
        old_by_key = {json.dumps([o.get(k) for k in map_keys]): o for o in old if isinstance(o, dict)}
    items_schema = schema.get("items") if isinstance(schema.get("items"), dict) else None
    for i, item in enumerate(value):
        ident = json.dumps([item.get(k) for k in map_keys]) if list_type == "map" and isinstance(item, dict) else json.dumps(item)
        if list_type in ("set", "map"):
            if ident in seen:
                shown = {k: item[k] for k in map_keys if k in item} if list_type == "map" else item
                causes.append(_cause("FieldValueDuplicate", f"{field}[{i}]",
                                     f"Duplicate value: {json.dumps(shown, separators=(',', ':'), ensure_ascii=False)}"))
            seen.add(ident)
        if items_schema:
            item_old = old_by_key.get(ident, _NO_CHECK) if list_type == "map" else _NO_CHECK
            causes += _validate(item, items_schema, f"{path}[{i}]", item_old, False, rule_causes, unchanged, rules_only)
    return causes


def _validate_object(value: dict[str, Any], schema: dict[str, Any], field: str, path: str, old: Any, root: bool,
                     rule_causes: list[dict[str, str]], unchanged: bool, rules_only: bool) -> list[dict[str, str]]:
    causes = []
    for req in schema.get("required") or []:
        if req not in value:
            causes.append(_cause("FieldValueRequired", f"{path}.{req}" if path else req, "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(_cause("FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        causes.append(_invalid(field, len(value), f"{field} in body should have at least {schema['minProperties']} properties"))
    props = _props(schema)
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in ROOT_FIELDS:
            continue
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub:
            item_old = old.get(key, _NO_CHECK) if isinstance(old, dict) else _NO_CHECK
            causes += _validate(item, sub, f"{path}.{key}" if path else key, item_old, False, rule_causes, unchanged, rules_only)
    return causes
