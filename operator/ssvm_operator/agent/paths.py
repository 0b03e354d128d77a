"""Where the agent keeps its files, in a real guest (root `/`) or under a simulated guest's state dir."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_STATE_DIR = "SSVM_AGENT_STATE_DIR"   # set: simulated mode, everything recorded under this dir
ENV_ROOT = "SSVM_AGENT_ROOT"             # real mode with files under a prefix (system tests)
ENV_AUTHORIZED_KEYS = "SSVM_AGENT_AUTHORIZED_KEYS"

MOUNT_ROOT = "mnt/SecStorage"            # CloudStack's mount parent inside the SSVM


@dataclass(frozen=True)
class AgentPaths:
    root: Path
    authorized_keys: Path

    @property
    def mount_root(self) -> Path:
        return self.root / MOUNT_ROOT

    @property
    def etc(self) -> Path:
        return self.root / "etc/ssvm-agent"

    @property
    def var(self) -> Path:
        return self.root / "var/lib/ssvm-agent"

    # Files the actions write and the copy server reads.
    @property
    def copy_config(self) -> Path:
        return self.etc / "copy-server.json"

    @property
    def credentials(self) -> Path:
        return self.etc / "copy-credentials.json"

    @property
    def link_secret(self) -> Path:
        return self.etc / "link-secret"   # the key download links are signed with (0600)

    @property
    def tls_cert(self) -> Path:
        return self.etc / "copy-tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.etc / "copy-tls.key"

    @property
    def stores(self) -> Path:
        return self.var / "stores.json"

    @property
    def routes(self) -> Path:
        return self.var / "routes.json"

    @property
    def ledger(self) -> Path:
        return self.root / "run/ssvm-agent/ledger.json"   # tmpfs in a real guest: forgotten at boot

    @property
    def boot_id(self) -> Path:
        return self.root / "run/ssvm-agent/boot-id"   # tmpfs too: a new one each boot

    @property
    def lock(self) -> Path:
        return self.var / "agent.lock"

    @property
    def sim(self) -> Path:
        return self.var / "simulated"


def resolve_paths(state_dir: str | None = None, root: str | None = None) -> tuple[AgentPaths, bool]:
    """Paths and whether the mode is simulated: an explicit state dir wins over the environment."""
    state_dir = state_dir or os.environ.get(ENV_STATE_DIR) or None
    if state_dir:
        base = Path(state_dir).resolve()
        keys = str(base / "authorized_keys")  # a simulated guest never reads the host's keys
        return AgentPaths(base, Path(keys)), True
    base = Path(root or os.environ.get(ENV_ROOT) or "/")
    keys = os.environ.get(ENV_AUTHORIZED_KEYS) or str(Path.home() / ".ssh/authorized_keys")
    return AgentPaths(base, Path(keys)), False
