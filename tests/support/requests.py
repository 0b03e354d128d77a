"""The one VMRequest builder of the backend tests: a plain request, any field overridden."""
from __future__ import annotations

from typing import Any

from ssvm_operator.model.vm import VMRequest


def vm_request(name: str = "vm1", *, running: bool = True, **fields: Any) -> VMRequest:
    base: dict[str, Any] = {"namespace": "ns", "uid": "u", "zone_name": "z", "role": "templateProcessor", "zone_spec": {},
                            "ssvm_spec": {}}
    return VMRequest(name=name, running=running, **{**base, **fields})
