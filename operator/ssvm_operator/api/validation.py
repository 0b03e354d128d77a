"""Offline admission of custom resources: what the API server would store, or why it would refuse.

`render` uses it to refuse bad manifests before a cluster sees them; the dev cluster uses the same
engine (ssvm_operator.admission) to answer 422 Invalid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssvm_operator.admission import schema as admission


@dataclass(frozen=True)
class FieldError:
    """One refused field, shaped like a `details.causes[]` entry of a 422 Invalid Status."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueTooLong...
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def admit(schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    """The object as stored (pruned, defaulted) and the errors that refuse it (empty when admitted)."""
    unknown: list[str] = []
    stored = admission.default_and_prune(obj, schema, "", unknown, root=True)
    causes = admission.validate(stored, schema, "", old=admission.NO_OLD_OBJECT if old is None else old, root=True)
    return stored, [FieldError(c.get("field", ""), c.get("reason", "FieldValueInvalid"), c.get("message", "")) for c in causes]
