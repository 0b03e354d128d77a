"""The guest channel: run `ssvm-agent <action>` on an SSVM over SSH (port 3922), JSON in and out.

The host key is pinned (RejectPolicy: a guest that shows another key is never talked to), every
step has a timeout and an outer deadline bounds the whole call. The async API runs the blocking
paramiko work in a thread. Secrets in a payload never reach an exception, a log line or a result.
A connection stays open for LINGER seconds after its action, so the actions of one pass (vm-setup,
firewall, setup-store, check) share one handshake; one the guest closed meanwhile is replaced.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import functools
import json
import logging
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Mapping, Protocol

import paramiko

from ssvm_operator.constants import SSH_PORT

from ssvm_operator.ssh import errors
from ssvm_operator.ssh.keys import fingerprint, load_private_key, load_public_key
from ssvm_operator.model.redaction import collect_secrets, redact, redact_text

log = logging.getLogger(__name__)

DEFAULT_PORT = SSH_PORT
_ACTION = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_MAX_OUTPUT = 4 << 20  # an agent answer is a few KiB; stop reading a runaway guest well before memory hurts
LINGER = 5.0           # seconds an idle connection is kept for the next action to the same guest
# SSH sessions get threads of their own: in asyncio's default pool (6 on 2 cores) a pass's next action
# queued behind hundreds of other guests' and outwaited its kept connection
SSH_WORKERS = 16
SSH_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=SSH_WORKERS, thread_name_prefix="guest-ssh")
_SLOTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionSlots]" = weakref.WeakKeyDictionary()


class SessionSlots:
    """The SSH threads, handed out first to sessions whose guest has a connection kept open: the actions of
    one pass follow each other on one handshake instead of queueing behind every other guest's first."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: tuple[collections.deque, collections.deque] = (collections.deque(), collections.deque())

    @contextlib.asynccontextmanager
    async def slot(self, warm: bool) -> AsyncIterator[None]:
        if self.free > 0 and not any(self._waiting):
            self.free -= 1
        else:
            turn = asyncio.get_running_loop().create_future()
            self._waiting[0 if warm else 1].append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()   # handed a slot as the caller gave up: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():   # a cancelled waiter is skipped
                    turn.set_result(None)
                    return
        self.free += 1


def _slots() -> SessionSlots:
    """A session waits here for a free SSH thread, before its deadline starts: a guest is timed, not our queue."""
    loop = asyncio.get_running_loop()
    if loop not in _SLOTS:
        _SLOTS[loop] = SessionSlots(SSH_WORKERS)
    return _SLOTS[loop]


@dataclass(frozen=True)
class GuestTarget:
    name: str                      # for messages: the SSVM's name
    address: str                   # its control address
    host_key: str                  # the pinned public key line ("ssh-ed25519 AAAA...")
    port: int = DEFAULT_PORT
    username: str = "root"
    agent_command: str = "ssvm-agent"
    zone: str = ""                 # for metrics: the zone the SSVM (or host) serves

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else ""


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    banner: float = 10.0
    auth: float = 10.0
    command: float = 120.0     # longest silence allowed while the agent runs
    deadline: float = 150.0    # the whole call, connect to exit status


@dataclass(frozen=True)
class ActionResult:
    action: str
    exit_code: int
    data: dict = field(default_factory=dict)   # the agent's JSON answer, redacted

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and bool(self.data.get("ok", False))

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")

    @property
    def message(self) -> str:
        return self.data.get("message", "")

    @property
    def simulated(self) -> bool:
        return bool(self.data.get("simulated", False))

    def raise_for_failure(self, target: str | None = None) -> "ActionResult":
        if not self.ok:
            raise errors.ActionFailed(f"{self.action} failed: {self.reason}: {self.message}", target,
                                      agent_reason=self.reason, exit_code=self.exit_code)
        return self


class IdleConnections:
    """Connections kept after their action, per (guest, operator key), shared by every channel of the process."""

    def __init__(self) -> None:
        self._kept: dict[tuple, list[tuple[float, paramiko.SSHClient]]] = {}
        self._lock = threading.Lock()

    def has(self, guest: tuple) -> bool:
        with self._lock:
            return any(time.monotonic() - since < LINGER for since, _ in self._kept.get(guest) or ())

    def take(self, guest: tuple) -> paramiko.SSHClient | None:
        with self._lock:
            kept = self._kept.get(guest) or []
            while kept:
                since, client = kept.pop()
                transport = client.get_transport()
                if transport is not None and transport.is_active() and time.monotonic() - since < LINGER:
                    return client
                client.close()
        return None

    def keep(self, guest: tuple, client: paramiko.SSHClient) -> None:
        with self._lock:
            self._kept.setdefault(guest, []).append((time.monotonic(), client))

    def close(self, older_than: float = 0.0, match: Callable[[tuple], bool] = lambda guest: True) -> None:
        now = time.monotonic()
        with self._lock:
            for guest, kept in list(self._kept.items()):
                for entry in [k for k in kept if match(guest) and now - k[0] >= older_than]:
                    kept.remove(entry)
                    entry[1].close()
                if not kept:
                    del self._kept[guest]

    def forget_guest(self, guest: tuple) -> None:
        """Closes every kept connection to the guest, whatever key it logged in with."""
        self.close(0.0, lambda kept: kept[:len(guest)] == guest)


IDLE = IdleConnections()
KEYS_ACTION = "authorized-keys"   # changes which operator keys may log in


class GuestChannel(Protocol):
    """What the reconciler needs: the real SSH channel and the in-memory fake both provide it."""

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any]) -> ActionResult: ...


class _PinnedKeyPolicy(paramiko.RejectPolicy):
    """Reached when the guest offers a key type other than the pinned one: a mismatch too."""

    def __init__(self, expected: paramiko.PKey):
        self.expected = expected

    def missing_host_key(self, client, hostname, key):
        raise errors.HostKeyMismatch(
            f"host key {key.get_name()} {fingerprint(key)} is not the pinned {fingerprint(self.expected)}")


def _classify_os_error(exc: OSError, where: str) -> errors.GuestError:
    if isinstance(exc, (socket.timeout, TimeoutError)) or exc.errno == errno.ETIMEDOUT:
        return errors.Timeout(f"{where}: timed out")
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return errors.ConnectionRefused(f"{where}: connection refused")
    return errors.Unreachable(f"{where}: {exc.strerror or type(exc).__name__}")


class SSHGuestChannel:
    def __init__(self, private_key: bytes | str | paramiko.PKey, timeouts: Timeouts = Timeouts(),
                 passphrase: str | None = None):
        self._pkey = private_key if isinstance(private_key, paramiko.PKey) else load_private_key(private_key, passphrase)
        self.timeouts = timeouts
        self._key_id = fingerprint(self._pkey)

    def __repr__(self) -> str:
        return f"SSHGuestChannel(key={fingerprint(self._pkey)})"

    @property
    def key_fingerprint(self) -> str:
        return fingerprint(self._pkey)

    def with_key(self, private_key: bytes | str | paramiko.PKey) -> "SSHGuestChannel":
        return SSHGuestChannel(private_key, self.timeouts)

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any]) -> ActionResult:
        clients: list[paramiko.SSHClient] = []
        secrets = collect_secrets(payload)
        abandoned = threading.Event()   # set when the caller stops waiting: the thread gives up at once
        try:
            async with _slots().slot(warm=IDLE.has(self._guest(target))):
                result = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(SSH_THREADS, functools.partial(
                        self._run_blocking, target, action, payload, clients, abandoned)),
                    timeout=self.timeouts.deadline + 1.0)  # the thread keeps its own deadline; this is the backstop
            asyncio.get_running_loop().call_later(LINGER, self.close_idle, LINGER)
            return result
        except asyncio.TimeoutError:
            raise errors.Timeout(f"{action}: no answer within {self.timeouts.deadline:g}s", target.name) from None
        except errors.GuestError as exc:
            exc.message = redact_text(exc.message, secrets)
            exc.args = (redact_text(str(exc), secrets),)
            raise
        finally:
            abandoned.set()
            for client in clients:
                client.close()  # also unblocks a worker thread still waiting (cancelled at shutdown, or the backstop fired)

    def _guest(self, target: GuestTarget) -> tuple:
        return target.address, target.port, target.username, target.host_key, self._key_id

    def close_idle(self, older_than: float = 0.0) -> None:
        """Closes the kept connections idle for `older_than` seconds or more (all of them by default)."""
        IDLE.close(older_than)

    def _reuse(self, target: GuestTarget, clients: list) -> tuple[paramiko.SSHClient, paramiko.Channel] | None:
        """A session on a connection kept from an earlier action, if one is still open."""
        client = IDLE.take(self._guest(target))
        if client is None:
            return None
        clients.append(client)
        try:
            return client, client.get_transport().open_session(timeout=self.timeouts.auth)
        except (paramiko.SSHException, OSError, EOFError, AttributeError):
            clients.remove(client)
            client.close()   # the guest closed it (a reboot, sshd restarted) and nothing ran: connect afresh
            return None

    def _connect(self, target: GuestTarget, clients: list) -> paramiko.SSHClient:
        pinned = load_public_key(target.host_key)
        client = paramiko.SSHClient()
        clients.append(client)
        known_name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
        client.get_host_keys().add(known_name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_PinnedKeyPolicy(pinned))
        where = f"{target.address}:{target.port}"
        t = self.timeouts
        try:
            client.connect(target.address, target.port, username=target.username, pkey=self._pkey,
                           timeout=t.connect, banner_timeout=t.banner, auth_timeout=t.auth, channel_timeout=t.auth,
                           allow_agent=False, look_for_keys=False)
        except errors.GuestError as exc:
            exc.target = target.name
            raise
        except paramiko.BadHostKeyException as exc:
            raise errors.HostKeyMismatch(f"{where} presented {fingerprint(exc.key)}, pinned is "
                                         f"{fingerprint(exc.expected_key)}", target.name) from None
        except paramiko.AuthenticationException:
            raise errors.AuthenticationFailed(f"{where} refused the operator key {fingerprint(self._pkey)}",
                                              target.name) from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            first = next(iter(exc.errors.values()))
            err = _classify_os_error(first, where)
            err.target = target.name
            raise err from None
        except OSError as exc:
            err = _classify_os_error(exc, where)
            err.target = target.name
            raise err from None
        except paramiko.SSHException as exc:
            # The transport thread may have failed first (banner never came) and the caller then sees
            # a later, vaguer error ("No existing session"): the thread's own exception says more.
            transport = client.get_transport()
            handshake_done = getattr(transport, "initial_kex_done", True) if transport is not None else True
            if transport is not None and not handshake_done:
                transport.join(0.5)  # let its thread record why it stopped
            first = getattr(transport, "saved_exception", None) if transport is not None else None
            text = f"{exc}" + (f" ({first})" if first is not None and str(first) != str(exc) else "")
            silent = not handshake_done and (first is None or "banner" in str(first).lower())
            if silent or any(word in text.lower() for word in ("banner", "timeout", "timed out")):
                raise errors.Timeout(f"{where}: SSH handshake: {text}", target.name) from None
            raise errors.ProtocolError(f"{where}: SSH: {text}", target.name) from None
        return client

    def _run_blocking(self, target: GuestTarget, action: str, payload: Mapping[str, Any], clients: list,
                      abandoned: threading.Event | None = None) -> ActionResult:
        if not _ACTION.match(action):
            raise ValueError(f"not an agent action name: {action!r}")
        started = time.monotonic()
        deadline = started + self.timeouts.deadline
        body = json.dumps(dict(payload), sort_keys=True).encode()
        log.debug("guest %s: running %s", target.name, action)
        reused = self._reuse(target, clients)
        client, channel = reused if reused is not None else (self._connect(target, clients), None)
        try:
            if channel is None:
                channel = client.get_transport().open_session(timeout=self.timeouts.auth)
            channel.settimeout(self.timeouts.command)
            channel.exec_command(f"{target.agent_command} {action}")
            channel.sendall(body)
            channel.shutdown_write()
            stdout, stderr = self._drain(channel, deadline, target, action, abandoned or threading.Event())
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise errors.Timeout(f"{action}: no exit status within {self.timeouts.deadline:g}s", target.name)
            code = channel.recv_exit_status()
            channel.close()
            if action == KEYS_ACTION:
                IDLE.forget_guest(self._guest(target)[:4])   # who may log in changed: the next action logs in afresh
            elif not (abandoned and abandoned.is_set()):
                clients.remove(client)   # kept open for the next action instead of closed by the caller
                IDLE.keep(self._guest(target), client)
        except (socket.timeout, TimeoutError):
            raise errors.Timeout(f"{action}: silent for {self.timeouts.command:g}s", target.name) from None
        except paramiko.SSHException as exc:
            raise errors.ProtocolError(f"{action}: SSH channel: {exc}", target.name) from None
        return self._result(target, action, code, stdout, stderr, collect_secrets(payload))

    def _drain(self, channel, deadline: float, target: GuestTarget, action: str,
               abandoned: threading.Event) -> tuple[bytes, bytes]:
        out, err = bytearray(), bytearray()
        while True:
            if time.monotonic() > deadline:
                raise errors.Timeout(f"{action}: not finished within {self.timeouts.deadline:g}s", target.name)
            if abandoned.is_set() or (channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready()
                                      and not channel.eof_received):
                raise errors.ProtocolError(f"{action}: the channel closed before the agent answered", target.name)
            progressed = False
            if channel.recv_ready():
                out += channel.recv(65536)
                progressed = True
            if channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
                progressed = True
            if len(out) + len(err) > _MAX_OUTPUT:
                raise errors.ProtocolError(f"{action}: the agent printed more than {_MAX_OUTPUT} bytes", target.name)
            if channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready():
                return bytes(out), bytes(err)
            if not progressed:
                time.sleep(0.005) if channel.status_event.is_set() else channel.status_event.wait(0.01)

    @staticmethod
    def _result(target: GuestTarget, action: str, code: int, stdout: bytes, stderr: bytes,
                secrets: list[str]) -> ActionResult:
        try:
            data = json.loads(stdout.decode("utf-8", "replace"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            tail = redact_text(stderr.decode("utf-8", "replace")[-300:].strip(), secrets)
            if code == 127:
                raise errors.ProtocolError(f"{target.agent_command}: not found on the guest", target.name) from None
            raise errors.ProtocolError(f"{action}: the agent answered no JSON (exit {code}): {tail}",
                                       target.name) from None
        return ActionResult(action, code, redact(data, secrets))
