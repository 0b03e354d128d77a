"""cloud-init NoCloud user data and network data of an SSVM (delivered in a Secret, never inline).

User data writes the boot arguments where CloudStack's system VM reads them, installs the
operator-generated SSH host key (so the operator can pin it) and the operator's authorised key,
moves sshd to port 3922, installs the guest agent and starts its copy server.
"""
from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import yaml

from ssvm_operator.constants import SSH_PORT
from ssvm_operator.model.redaction import REDACTED
from ssvm_operator.model.niclayout import PlannedNic

BOOT_ARGS_PATH = "/var/cache/cloud/cmdline"          # where CloudStack's system VM scripts read them
AUTHORIZED_KEYS_PATH = "/root/.ssh/authorized_keys"
SSHD_DROP_IN_PATH = "/etc/ssh/sshd_config.d/10-ssvm.conf"
AGENT_ZIPAPP_PATH = "/usr/local/lib/ssvm-agent/ssvm-agent.pyz"
AGENT_COMMAND_PATH = "/usr/local/bin/ssvm-agent"
AGENT_UNIT_PATH = "/etc/systemd/system/ssvm-agent.service"
AGENT_UNIT = "ssvm-agent.service"
# Files whose content is a secret, and cloud-init keys holding private keys: redacted by `redact_user_data`.
SECRET_PATHS = frozenset({BOOT_ARGS_PATH})

_KEY_TYPES = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ecdsa-sha2-nistp256": "ecdsa",
              "ecdsa-sha2-nistp384": "ecdsa", "ecdsa-sha2-nistp521": "ecdsa"}


@dataclass(frozen=True)
class AgentPayload:
    """How the guest gets `ssvm-agent`: the zipapp's bytes (written by cloud-init) or a pip requirement."""

    zipapp: bytes | None = None
    pip_spec: str | None = None

    def __post_init__(self) -> None:
        if (self.zipapp is None) == (self.pip_spec is None):
            raise ValueError("AgentPayload takes exactly one of zipapp or pip_spec")

    @classmethod
    def bundled(cls) -> "AgentPayload":
        """The agent of this package, packed as a zipapp (needs only python3 in the guest)."""
        from ssvm_operator.agent.pack import zipapp_bytes

        return cls(zipapp=zipapp_bytes())

    def describe(self) -> str:
        if self.zipapp is not None:
            return f"zipapp sha256:{hashlib.sha256(self.zipapp).hexdigest()[:16]} ({len(self.zipapp)} bytes)"
        return f"pip {self.pip_spec}"


def host_key_type(public_key: str) -> str:
    """cloud-init's key type name (ed25519, rsa, ecdsa) of an OpenSSH public key line."""
    kind = public_key.split(maxsplit=1)[0] if public_key.strip() else ""
    if kind not in _KEY_TYPES:
        raise ValueError(f"unsupported SSH host key type {kind!r}: use one of {', '.join(sorted(_KEY_TYPES))}")
    return _KEY_TYPES[kind]


def user_data_document(*, boot_args: str, host_private_key: str, host_public_key: str, operator_public_key: str,
                       agent: AgentPayload, hostname: str | None = None, ssh_port: int = SSH_PORT) -> dict[str, Any]:
    """The cloud-config as a dict (see `render_cloud_config` for the text cloud-init reads)."""
    key_type = host_key_type(host_public_key)
    files: list[dict[str, Any]] = [
        {"path": BOOT_ARGS_PATH, "permissions": "0600", "owner": "root:root", "content": boot_args + "\n"},
        {"path": AUTHORIZED_KEYS_PATH, "permissions": "0600", "owner": "root:root", "content": operator_public_key.strip() + "\n"},
        {"path": SSHD_DROP_IN_PATH, "permissions": "0644", "content": (
            f"# The operator's guest channel: keys only, on CloudStack's system VM port.\nPort {ssh_port}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n")},
        {"path": AGENT_UNIT_PATH, "permissions": "0644", "content": (
            "[Unit]\nDescription=SSVM agent copy server\nAfter=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nExecStart={AGENT_COMMAND_PATH} serve\nRestart=always\nRestartSec=2\n\n"
            "[Install]\nWantedBy=multi-user.target\n")},
    ]
    commands: list[Any] = []
    if agent.zipapp is not None:
        files.append({"path": AGENT_ZIPAPP_PATH, "permissions": "0755", "encoding": "b64",
                      "content": base64.b64encode(agent.zipapp).decode()})
        files.append({"path": AGENT_COMMAND_PATH, "permissions": "0755",
                      "content": f'#!/bin/sh\nexec python3 {AGENT_ZIPAPP_PATH} "$@"\n'})
    else:
        commands.append(["python3", "-m", "pip", "install", "--break-system-packages", str(agent.pip_spec)])
    commands += [
        ["systemctl", "daemon-reload"],
        ["systemctl", "restart", "ssh"],
        ["systemctl", "enable", "--now", AGENT_UNIT],
    ]
    doc: dict[str, Any] = {
        "disable_root": False,
        "ssh_pwauth": False,
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],  # the operator's key only: a generated one could not be pinned
        "ssh_keys": {f"{key_type}_private": host_private_key.strip() + "\n", f"{key_type}_public": host_public_key.strip()},
        "write_files": files,
        "runcmd": commands,
    }
    if hostname:
        doc["hostname"] = hostname
    return doc


class _BlockDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings (keys, unit files) as `|` blocks: readable in the Secret and in reviews. libyaml's
    emitter when PyYAML has it: the pure-Python one spent a sixth of the operator's time on the agent's base64."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(ch in value for ch in "\r\t") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, width=4096)


def dump_yaml_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=False, width=4096)


def render_cloud_config(doc: dict[str, Any]) -> str:
    return "#cloud-config\n" + dump_yaml(doc)


def build_user_data(**kwargs: Any) -> str:
    """User data text: the arguments of `user_data_document`."""
    return render_cloud_config(user_data_document(**kwargs))


def redact_user_data(doc: dict[str, Any], boot_args_redacted: str | None = None) -> dict[str, Any]:
    """A copy fit for review output: private keys and secret files replaced, the agent summarised."""
    out = copy.deepcopy(doc)
    for name in list(out.get("ssh_keys", {})):
        if name.endswith("_private"):
            out["ssh_keys"][name] = REDACTED
    for entry in out.get("write_files", []):
        if entry["path"] in SECRET_PATHS:
            entry["content"] = (boot_args_redacted + "\n") if (entry["path"] == BOOT_ARGS_PATH and boot_args_redacted) else REDACTED
        elif entry["path"] == AGENT_ZIPAPP_PATH:
            raw = base64.b64decode(entry.pop("content"))
            entry.pop("encoding", None)
            entry["content"] = f"<ssvm-agent {AgentPayload(zipapp=raw).describe()}>"
    return out


def interface_mac(uid: str, interface: str) -> str:
    """A stable, locally administered MAC per SSVM and interface, so network data can name the NICs."""
    digest = hashlib.sha256(f"{uid}/{interface}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def network_data_document(nics: Sequence[PlannedNic], macs: dict[str, str], mtu: int) -> dict[str, Any]:
    """Netplan v2: NICs named ethN by MAC (the boot arguments' device names), DHCP/IPAM addresses,
    the default route only through the default NIC."""
    ethernets: dict[str, Any] = {}
    for nic in nics:
        entry: dict[str, Any] = {"match": {"macaddress": macs[nic.name]}, "set-name": f"eth{nic.device_id}", "dhcp4": True}
        if not nic.is_pod:
            entry["mtu"] = mtu  # the pod network's MTU is the cluster's, not the zone's
        if not nic.default:
            entry["dhcp4-overrides"] = {"use-routes": False, "use-dns": False}
        ethernets[f"eth{nic.device_id}"] = entry
    return {"version": 2, "ethernets": ethernets}


def render_network_data(doc: dict[str, Any]) -> str:
    return dump_yaml(doc)
