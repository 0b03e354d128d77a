"""Running an Argo CD health script in a real Lua 5.1 (Argo CD's gopher-lua speaks 5.1)."""
from __future__ import annotations

from typing import Any

from lupa import lua51


def _to_lua(runtime: Any, value: Any) -> Any:
    # JSON objects and arrays become Lua tables (arrays 1-based), as Argo CD converts them
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)  # Lua 5.1 numbers are doubles
    return str(value)  # timestamps YAML turned into datetimes are strings in JSON


def run_health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script)
    return {k: result[k] for k in ("status", "message") if result[k] is not None}
