"""Build the agent as one executable zipapp (`python3 ssvm-agent.pyz <action>`) for cloud-init.

Only the agent's own modules go in, under a stub `ssvm_operator` package, so the guest needs
nothing but python3. `python -m ssvm_operator.agent.pack OUT.pyz` builds it.
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parent
_MAIN = "import sys\nfrom ssvm_operator.agent.cli import main\nsys.exit(main())\n"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes


def zipapp_bytes() -> bytes:
    """The archive in memory: a shebang line, then the zip (what cloud-init writes to the guest)."""
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def add(name: str, text: str) -> None:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text)

        add("__main__.py", _MAIN)
        add("ssvm_operator/__init__.py", '"""Stub package: only the guest agent is shipped."""\n')
        for source in sorted(AGENT_DIR.glob("*.py")):
            if source.name != "pack.py":
                add(f"ssvm_operator/agent/{source.name}", source.read_text())
    return buf.getvalue()


def build_zipapp(dest: str | Path) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(zipapp_bytes())
    dest.chmod(0o755)
    return dest


if __name__ == "__main__":
    out = build_zipapp(sys.argv[1] if len(sys.argv) > 1 else "dist/ssvm-agent.pyz")
    print(out)
