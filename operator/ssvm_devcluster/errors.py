"""Kubernetes `Status` errors, shaped as a real API server returns them."""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API failure that renders as a `v1 Status` body with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "code": self.code,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind_plural: str, name: str | None, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind_plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _gr(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_gr(plural, group)} "{name}" not found', _details(plural, name, group))


class PageNotFound(ApiError):
    """What kube-apiserver answers for a path under /apis/<group> of no built-in group: a plain-text
    404 from its fall-through handler, not a Status."""

    TEXT = "404 page not found\n"

    def __init__(self) -> None:
        super().__init__(404, "NotFound", self.TEXT.strip(), None)


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_gr(plural, group)} "{name}" already exists',
                    _details(plural, name, group))


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_gr(plural, group)} "{name}": {why}',
                    _details(plural, name, group))


def stale(plural: str, group: str, name: str) -> ApiError:
    return conflict(plural, group, name,
                    "the object has been modified; please apply your changes to the latest version and try again")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, None)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: '
                    f'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, '
                    f'application/strategic-merge-patch+json (got "{content_type}")', None)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message, None)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid; `causes` items have reason, message, field (as `kubectl` prints them)."""
    texts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    what = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{what} "{name}" is invalid: {joined}',
                    {"name": name, "group": group, "kind": kind, "causes": causes})


def unprocessable(message: str) -> ApiError:
    """A 422 without field causes, as for a JSON-patch whose `test` op fails."""
    return ApiError(422, "Invalid", message, {})
