"""A simulated SSVM guest for the dev cluster: an SSH server on its own loopback address, port 3922.

It presents the VM's host key, accepts the keys in its state dir's authorized_keys (seeded with the
operator's key, so rotation works as on a real guest), and runs the real agent in simulated mode
with that state dir: mounts and firewall rules are recorded there, and results say so.
`start_simulated_guest(...)` starts one in threads; `python -m ssvm_devcluster.simserver` runs one.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ssvm_operator.constants import SSH_PORT
from ssvm_operator.agent import cli as agent_cli
from ssvm_operator.agent import copyserver
from ssvm_operator.agent.paths import resolve_paths
from ssvm_operator.agent.authorized_keys import fingerprint as blob_fingerprint, parse_key
from ssvm_operator.agent.errors import AgentError
from ssvm_operator.agent.fileio import write_json
from ssvm_operator.agent import jobs as agent_jobs
from ssvm_operator.ssh.keys import fingerprint

log = logging.getLogger(__name__)
_HANDSHAKE_TIMEOUT = 15.0
_STDIN_LIMIT = 4 << 20


class _GuestInterface(paramiko.ServerInterface):
    def __init__(self, guest: "SimulatedGuest"):
        self.guest = guest
        self.commands: dict[int, str] = {}
        self.exec_event = threading.Event()

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == self.guest.username and fingerprint(key) in self.guest.authorized_fingerprints():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.commands[channel.get_id()] = command.decode("utf-8", "replace")
        threading.Thread(target=self.guest._exec, args=(channel, self.commands[channel.get_id()]), daemon=True).start()
        return True


@dataclass
class SimulatedGuest:
    address: str
    port: int
    host_key: paramiko.PKey
    state_dir: Path
    username: str = "root"
    copy_port: int | None = None   # also run the guest's copy server on (address, copy_port)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)
    _transports: set = field(default_factory=set)
    connections: int = 0           # SSH connections accepted (each costs a handshake)

    @property
    def authorized_keys_path(self) -> Path:
        return self.state_dir / "authorized_keys"

    def authorized_fingerprints(self) -> set[str]:
        found = set()
        path = self.authorized_keys_path
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                found.add(blob_fingerprint(parse_key(line)[1]))
            except AgentError:
                continue
        return found

    def start(self) -> "SimulatedGuest":
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.address, self.port))
        self._sock.listen(64)   # accept blocks (no polling: a thousand idle guests cost no CPU); stop wakes it
        self.port = self._sock.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"sim-guest-{self.address}", daemon=True)
        thread.start()
        self._threads.append(thread)
        if self.copy_port is not None:
            self._start_copy_server()
        return self

    def _start_copy_server(self) -> None:
        paths, _ = resolve_paths(str(self.state_dir))
        status = paths.var / "copy-server.json"
        status.unlink(missing_ok=True)
        thread = threading.Thread(target=copyserver.serve, args=(paths,), daemon=True, name=f"sim-copy-{self.address}",
                                  kwargs={"bind": self.address, "port": self.copy_port, "stop": self._stop, "poll": 2.0})
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + 5.0  # the listener binds in well under a second
        while time.monotonic() < deadline:
            if status.exists():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the simulated copy server on {self.address}:{self.copy_port} did not start")

    def stop(self) -> None:
        self._stop.set()
        agent_jobs.stop_all(resolve_paths(str(self.state_dir))[0])   # a VM's processes end with it
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept
            except OSError:
                pass
        for transport in list(self._transports):
            transport.close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> "SimulatedGuest":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._stop.is_set():
                conn.close()
                return
            self._serve_connection(conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        # The transport's own thread does the work, handshake included; stop closes those still open.
        self._transports = {t for t in self._transports if t.is_active()}
        self.connections += 1
        try:
            transport = paramiko.Transport(conn)
        except (OSError, paramiko.SSHException):   # the client went before its connection was taken on
            conn.close()
            return
        transport.add_server_key(self.host_key)
        self._transports.add(transport)
        transport.start_server(event=threading.Event(), server=_GuestInterface(self))

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        try:
            words = shlex.split(command)
            if len(words) != 2 or not words[0].endswith("ssvm-agent"):
                channel.sendall_stderr(f"sim-guest: only 'ssvm-agent <action>' runs here, not {words[:1]}\n".encode())
                channel.send_exit_status(127)
                return
            stdin = bytearray()
            channel.settimeout(_HANDSHAKE_TIMEOUT)
            while len(stdin) <= _STDIN_LIMIT:
                chunk = channel.recv(65536)
                if not chunk:
                    break
                stdin += chunk
            code, doc = self._run_agent(words[1], bytes(stdin))
            channel.sendall(json.dumps(doc, sort_keys=True).encode() + b"\n")
            channel.send_exit_status(code)
        except (OSError, EOFError, paramiko.SSHException) as exc:  # the client went away mid-command
            log.debug("sim guest %s: exec ended early: %s", self.address, type(exc).__name__)
        finally:
            try:
                channel.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass

    def _run_agent(self, action: str, stdin: bytes) -> tuple[int, dict]:
        try:
            payload = agent_cli._read_payload(io.StringIO(stdin.decode("utf-8", "replace")))
        except AgentError as exc:
            return exc.exit_code, {"ok": False, "action": action, "simulated": True,
                                   "reason": exc.reason, "message": exc.message}
        return agent_cli.execute(action, payload, state_dir=str(self.state_dir))


def start_simulated_guest(address: str, host_key_private: str | bytes, authorized_key: str,
                          state_dir: str | Path, port: int = SSH_PORT, username: str = "root",
                          copy_port: int | None = None, exports_root: str | Path | None = None) -> SimulatedGuest:
    """Start a simulated guest listening on (address, port); seeds authorized_keys if it is new.

    With `copy_port` (80 in the dev cluster, 0 for any free port in tests) the guest's copy server
    runs too, bound to the same address, so `check` finds it up. With `exports_root` the guest's
    store mounts are links to one directory per export under it, shared with the other guests."""
    from ssvm_operator.ssh.keys import load_private_key
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    if exports_root is not None:
        paths, _ = resolve_paths(str(state))
        # a simulated guest's connections leave from its own address, as a VM's do (peers' allow-lists see it)
        write_json(paths.sim / "settings.json", {"exportsRoot": str(exports_root), "sourceAddress": address})
    keys = state / "authorized_keys"
    if not keys.exists():
        keys.write_text(authorized_key.strip() + "\n")
        keys.chmod(0o600)
    guest = SimulatedGuest(address, port, load_private_key(host_key_private), state, username, copy_port)
    return guest.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssvm_devcluster.simserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="loopback address, e.g. 127.0.10.5")
    parser.add_argument("--port", type=int, default=SSH_PORT)
    parser.add_argument("--host-key", required=True, help="file with the guest's private host key")
    parser.add_argument("--authorized-key", required=True, help="file with the operator's public key line")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--copy-port", type=int, help="also run the copy server on this port (80 in the dev cluster)")
    args = parser.parse_args(argv)
    guest = start_simulated_guest(args.address, Path(args.host_key).read_bytes(),
                                  Path(args.authorized_key).read_text(), args.state_dir, args.port,
                                  copy_port=args.copy_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"address": guest.address, "port": guest.port, "stateDir": str(guest.state_dir)}), flush=True)
    stop.wait()
    guest.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
