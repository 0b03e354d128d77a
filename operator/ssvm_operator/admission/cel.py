"""CRD `x-kubernetes-validations`: CEL rules evaluated with cel-python plus the Kubernetes CEL
library functions (url, ip, cidr, strings, lists) the generated CRDs use.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import logging
import re
import urllib.parse
from typing import Any

NO_OLD = object()


@functools.cache
def _env() -> Any:
    import celpy
    # cel-python's DEBUG output dumps every activation (whole objects): a DEBUG log level elsewhere must not turn it on
    logging.getLogger("celpy").setLevel(logging.INFO)
    return celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    env = _env()
    return env.program(env.compile(rule), functions=_functions())


def _ct() -> Any:
    import celpy.celtypes as ct
    return ct


class _Url(str):
    pass


class _Ip(str):
    pass


class _Cidr(str):
    pass


def _functions() -> dict[str, Any]:
    ct = _ct()
    B, S, I, L = ct.BoolType, ct.StringType, ct.IntType, ct.ListType

    def parse_url(s: Any) -> urllib.parse.ParseResult | None:
        s = str(s)
        parsed = urllib.parse.urlparse(s)
        if not parsed.scheme or not (parsed.netloc or s.startswith("/")) or " " in s:
            return None
        return parsed

    def ip_obj(s: Any) -> Any:
        return ipaddress.ip_address(str(s))

    def is_ip(s: Any) -> Any:
        try:
            ipaddress.ip_address(str(s))
            return B("/" not in str(s) and "%" not in str(s))
        except ValueError:
            return B(False)

    def is_cidr(s: Any) -> Any:
        try:
            ipaddress.ip_network(str(s), strict=False)
            return B("/" in str(s))
        except ValueError:
            return B(False)

    def url(s: Any) -> Any:
        if parse_url(s) is None:
            raise ValueError(f"URL parse error during conversion from string: {s}")
        return S(str(s))

    def ip(s: Any) -> Any:
        if isinstance(s, str) and "/" in str(s):  # cidr(x).ip()
            return S(str(s).split("/")[0])
        if not is_ip(s):
            raise ValueError(f"IP Address {s!r} parse error during conversion from string")
        return S(str(s))

    def cidr(s: Any) -> Any:
        if not is_cidr(s):
            raise ValueError(f"network address parse error during conversion from string: {s}")
        return S(str(s))

    def contains_ip(c: Any, addr: Any) -> Any:
        return B(ipaddress.ip_address(str(addr)) in ipaddress.ip_network(str(c), strict=False))

    def contains_cidr(c: Any, other: Any) -> Any:
        return B(ipaddress.ip_network(str(other), strict=False).subnet_of(ipaddress.ip_network(str(c), strict=False)))

    def url_part(attr: str) -> Any:
        def getter(u: Any) -> Any:
            p = parse_url(u)
            if p is None:
                return S("")
            value = {"getScheme": p.scheme, "getHost": p.netloc.rsplit("@", 1)[-1],
                     "getHostname": p.hostname or "", "getPort": str(p.port or ""),
                     "getEscapedPath": p.path, "getQuery": p.query}[attr]
            return S(value)
        return getter

    def is_sorted(lst: Any) -> Any:
        items = list(lst)
        return B(all(items[i] <= items[i + 1] for i in range(len(items) - 1)))

    def join(lst: Any, sep: Any = "") -> Any:
        return S(str(sep).join(str(x) for x in lst))

    return {
        "isURL": lambda s: B(parse_url(s) is not None), "url": url,
        "getScheme": url_part("getScheme"), "getHost": url_part("getHost"), "getHostname": url_part("getHostname"),
        "getPort": url_part("getPort"), "getEscapedPath": url_part("getEscapedPath"), "getQuery": url_part("getQuery"),
        "isIP": is_ip, "ip": ip, "isCIDR": is_cidr, "cidr": cidr,
        "family": lambda a: I(ip_obj(str(a).split("/")[0]).version),
        "isLoopback": lambda a: B(ip_obj(a).is_loopback), "isUnspecified": lambda a: B(ip_obj(a).is_unspecified),
        "isGlobalUnicast": lambda a: B(ip_obj(a).is_global),
        "prefixLength": lambda c: I(ipaddress.ip_network(str(c), strict=False).prefixlen),
        "containsIP": contains_ip, "containsCIDR": contains_cidr,
        "masked": lambda c: S(str(ipaddress.ip_network(str(c), strict=False))),
        "lowerAscii": lambda s: S(str(s).lower()), "upperAscii": lambda s: S(str(s).upper()),
        "trim": lambda s: S(str(s).strip()),
        "replace": lambda s, a, b, n=-1: S(str(s).replace(str(a), str(b), int(n))),
        "split": lambda s, sep, n=-1: L([S(x) for x in str(s).split(str(sep), int(n) if int(n) >= 0 else -1)]),
        "join": join,
        "indexOf": lambda s, x: I(list(s).index(x) if isinstance(s, list) and x in s else
                                  (str(s).find(str(x)) if not isinstance(s, list) else -1)),
        "lastIndexOf": lambda s, x: I(str(s).rfind(str(x))),
        "substring": lambda s, a, b=None: S(str(s)[int(a):] if b is None else str(s)[int(a):int(b)]),
        "charAt": lambda s, i: S(str(s)[int(i)] if int(i) < len(str(s)) else ""),
        "isSorted": is_sorted, "sum": lambda lst: sum(lst, I(0)),
        "min": lambda lst: min(lst), "max": lambda lst: max(lst),
        "find": lambda s, rx: S((m.group(0) if (m := re.search(str(rx), str(s))) else "")),
        "findAll": lambda s, rx, n=-1: L([S(x) for x in re.findall(str(rx), str(s))][: None if int(n) < 0 else int(n)]),
    }


def _to_cel(value: Any) -> Any:
    import celpy
    return celpy.json_to_cel(value)


def is_transition(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def _type_of(schema: dict[str, Any]) -> str:
    return schema.get("type") or "object"


def _bad_value(schema: dict[str, Any], value: Any) -> str | None:
    """The value as kube-apiserver prints it in a rule's refusal: left out for objects and arrays."""
    if schema.get("type") in ("object", "array") or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "null" if value is None else str(value)


def _render_message(reason: str, value: str | None, message: str) -> str:
    match reason:
        case "FieldValueForbidden":
            return f"Forbidden: {message}"
        case "FieldValueRequired":
            return f"Required value: {message}"
        case "FieldValueDuplicate":
            return "Duplicate value" + (f": {value}" if value is not None else "")
    return "Invalid value" + (f": {value}" if value is not None else "") + f": {message}"


def check_rules(schema: dict[str, Any], value: Any, old: Any, path: str, transition_only: bool = False) -> list[dict[str, str]]:
    """Evaluate the rules of one schema node; return failure causes. `transition_only`: the value equals
    its old one, so only rules using oldSelf can fail (the server ratchets the others' errors)."""
    causes = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        if is_transition(text) and old is NO_OLD:
            continue  # transition rules only run on update, when an old value exists
        if transition_only and not is_transition(text):
            continue
        activation: dict[str, Any] = {"self": _to_cel(value)}
        if old is not NO_OLD:
            activation["oldSelf"] = _to_cel(old)
        reason = rule.get("reason") or "FieldValueInvalid"
        field = path
        if rule.get("fieldPath"):
            field = f"{path}{rule['fieldPath']}" if path else rule["fieldPath"].lstrip(".")
        try:
            result = _program(text).evaluate(activation)
            ok = bool(result) if isinstance(result, (bool, int)) or type(result).__name__ == "BoolType" else False
            if type(result).__name__ == "CELEvalError":
                raise ValueError(str(result))
        except Exception as e:  # noqa: BLE001 - a broken rule refuses the object, as the server does
            causes.append({"reason": "FieldValueInvalid", "field": field or "<root>",
                           "message": f"Invalid value: {json.dumps(_type_of(schema))}: rule evaluation error: {e}"[:500]})
            continue
        if ok:
            continue
        message = rule.get("message") or f"failed rule: {text}"
        if rule.get("messageExpression"):
            try:
                message = str(_program(rule["messageExpression"]).evaluate(activation)) or message
            except Exception:  # noqa: BLE001 - the server falls back to `message` on a broken expression
                pass
        causes.append({"reason": reason, "field": field or "<root>",
                       "message": _render_message(reason, _bad_value(schema, value), message)})
    return causes
