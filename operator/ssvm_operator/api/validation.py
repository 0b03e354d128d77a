"""Offline admission for custom resources, as the API server does it for a CRD's structural schema.

Order as in kube-apiserver: prune unknown fields, apply defaults, validate the OpenAPI schema, then
evaluate the `x-kubernetes-validations` CEL rules (transition rules with `oldSelf` only on update).
Used by `render` to refuse bad manifests before a cluster sees them, and by the tests.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Iterator

import jsonschema

_MISSING = object()


@dataclass(frozen=True)
class FieldError:
    """One refused field, shaped like a `details.causes[]` entry of a 422 Invalid Status."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueTooLong...
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _path(parts: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def prune(schema: dict[str, Any], value: Any) -> Any:
    """Drops fields the schema does not know (unless it preserves unknown fields)."""
    if isinstance(value, dict) and schema.get("type") == "object" and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        props = schema["properties"]
        return {k: prune(props[k], v) for k, v in value.items() if k in props}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], v) for v in value]
    return value


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fills absent fields with their schema defaults, recursively (defaults of defaults included)."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> Iterator[FieldError]:
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "required":
            missing = re.search(r"'([^']+)' is a required property", err.message)
            field = _path(path + [missing.group(1) if missing else "?"])
            yield FieldError(field, "FieldValueRequired", "Required value")
            continue
        field = _path(path)
        value = err.instance
        detail = {
            "enum": lambda: f'Unsupported value: {value!r}: supported values: {", ".join(map(repr, err.validator_value))}',
            "pattern": lambda: f'Invalid value: {value!r}: {field} in body should match \'{err.validator_value}\'',
            "minimum": lambda: f"Invalid value: {value}: {field} in body should be greater than or equal to {err.validator_value}",
            "maximum": lambda: f"Invalid value: {value}: {field} in body should be less than or equal to {err.validator_value}",
            "maxItems": lambda: f"Too many: {len(value)}: must have at most {err.validator_value} items",
            "maxLength": lambda: f"Too long: may not be more than {err.validator_value} bytes",
            "minLength": lambda: f"Invalid value: {value!r}: {field} in body should be at least {err.validator_value} chars long",
            "type": lambda: f'Invalid value: "{type(value).__name__}": {field} in body must be of type {err.validator_value}: {value!r}',
        }.get(str(err.validator), lambda: f"Invalid value: {value!r}: {err.message}")()
        reason = {"enum": "FieldValueNotSupported", "maxItems": "FieldValueTooMany",
                  "maxLength": "FieldValueTooLong", "type": "FieldValueTypeInvalid"}.get(str(err.validator), "FieldValueInvalid")
        yield FieldError(field, reason, detail)


def _cel_program(rule: str):  # cached: compiling CEL dominates the cost of admission
    import celpy  # imported lazily: only admission needs it

    program = _PROGRAMS.get(rule)
    if program is None:
        env = celpy.Environment()
        program = _PROGRAMS[rule] = env.program(env.compile(rule))
    return program


_PROGRAMS: dict[str, Any] = {}


def _eval_rule(rule: str, value: Any, old: Any) -> bool:
    import celpy

    activation = {"self": celpy.json_to_cel(value)}
    if old is not _MISSING:
        activation["oldSelf"] = celpy.json_to_cel(old)
    result = _cel_program(rule).evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return bool(result)


def _cel_errors(schema: dict[str, Any], value: Any, old: Any, path: list[Any]) -> Iterator[FieldError]:
    for entry in schema.get("x-kubernetes-validations", []):
        rule = entry["rule"]
        if "oldSelf" in rule and old is _MISSING:
            continue  # transition rules apply to updates of an existing value only
        try:
            ok = _eval_rule(rule, value, old)
        except Exception as exc:  # a rule that cannot evaluate refuses the object, as the API server does
            ok, entry = False, {**entry, "message": f"{entry.get('message', rule)} (rule error: {exc})"}
        if not ok:
            field = _path(path) + entry.get("fieldPath", "")
            yield FieldError(field, "FieldValueInvalid", f"Invalid value: {entry.get('message', 'failed rule: ' + rule)}")
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in value:
                sub_old = old.get(name, _MISSING) if isinstance(old, dict) else _MISSING
                yield from _cel_errors(sub, value[name], sub_old, path + [name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _cel_errors(schema["items"], item, _MISSING, path + [i])


def admit(schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    """Returns the object as stored (pruned, defaulted) and the errors that refuse it (empty when admitted)."""
    stored = apply_defaults(schema, prune(schema, obj))
    errors = list(_schema_errors(schema, stored))
    if not errors:  # CEL rules assume a schema-valid object, as in the API server
        old_stored = apply_defaults(schema, prune(schema, old)) if old is not None else _MISSING
        for part in ("spec", "status"):
            if part in stored and part in schema.get("properties", {}):
                sub_old = old_stored.get(part, _MISSING) if isinstance(old_stored, dict) else _MISSING
                errors.extend(_cel_errors(schema["properties"][part], stored[part], sub_old, [part]))
    return stored, errors
