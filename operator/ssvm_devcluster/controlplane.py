"""The real Kubernetes control plane for tests and the demo: etcd, kube-apiserver and
kube-controller-manager built from their Go modules (hack/build-control-plane.sh), run on loopback.

What `ControlPlane` starts, as a cluster would run it: etcd on a free port and a temporary data
directory; kube-apiserver with serving certificates made at start (a CA of its own), RBAC
authorization and static tokens for two identities (an admin in `system:masters`, and the operator as
the ServiceAccount `ssvm-system/ssvm-operator`, authorised only by what RBAC grants it);
kube-controller-manager with the garbage collector and the namespace controller (owner references
are collected by it on a real cluster, not by the API server). Everything stops, and the temporary
directory goes, on `stop()`.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "hack" / "build-control-plane.sh"
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "ssvm-system", "ssvm-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
CONTROLLERS = "garbagecollector,namespace"


def build_binaries() -> pathlib.Path:
    """The directory with etcd, kube-apiserver and kube-controller-manager: built once, cached outside the tree
    (`SSVM_CONTROL_PLANE_BIN` names one that hack/test.sh already built)."""
    if os.environ.get("SSVM_CONTROL_PLANE_BIN"):
        return pathlib.Path(os.environ["SSVM_CONTROL_PLANE_BIN"])
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pem_pair(directory: pathlib.Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost signed by it, and the service-account signing key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    def key_pem(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ssvm-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(key_pem(key))
    (directory / "sa.key").write_bytes(key_pem(sa_key))
    (directory / "sa.pub").write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                         serialization.PublicFormat.SubjectPublicKeyInfo))


def kubeconfig_text(server: str, ca_file: pathlib.Path, token: str, user: str, namespace: str = "default") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "ssvm-real", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "ssvm-real", "user": user, "namespace": namespace}}],
    }, indent=1)


class ControlPlane:
    """`with ControlPlane() as cp:` serves a real API at `cp.url`; `cp.kubeconfig_path` is the admin's,
    `cp.operator_kubeconfig_path` the operator ServiceAccount's."""

    def __init__(self, bin_dir: str | os.PathLike[str] | None = None, workdir: str | os.PathLike[str] | None = None,
                 log: bool = False, audit: bool = False) -> None:
        """`audit=True` writes kube-apiserver's audit log (every request, metadata only) for `requests()`."""
        self.bin_dir = pathlib.Path(bin_dir) if bin_dir else None
        self._own_workdir = workdir is None
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="ssvm-control-plane-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log = log
        self.audit = audit
        self.url = ""

    # --- paths ---
    @property
    def kubeconfig_path(self) -> pathlib.Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def operator_kubeconfig_path(self) -> pathlib.Path:
        return self.workdir / "operator.kubeconfig"

    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _spawn(self, name: str, args: list[str]) -> None:
        out = open(self.workdir / f"{name}.log", "wb")   # noqa: SIM115 - kept open for the process's life
        self.processes[name] = subprocess.Popen([self._bin(name), *args], stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def logs(self, name: str, tail: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    # --- lifecycle ---
    def start(self, timeout: float = 90.0) -> "ControlPlane":
        if self.bin_dir is None:
            self.bin_dir = build_binaries()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        certs = self.workdir / "pki"
        certs.mkdir(parents=True, exist_ok=True)
        _pem_pair(certs)
        self.admin_token, self.operator_token = secrets.token_hex(16), secrets.token_hex(16)
        (certs / "tokens.csv").write_text(
            f'{self.admin_token},ssvm-test-admin,admin,"system:masters"\n'
            f'{self.operator_token},{OPERATOR_USER},operator,"system:serviceaccounts,system:serviceaccounts:{OPERATOR_NAMESPACE}"\n')
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self._spawn("etcd", [
            "--data-dir", str(self.workdir / "etcd"), "--name", "ssvm-test",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"ssvm-test=http://127.0.0.1:{peer_port}", "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self._wait(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), timeout, "etcd")
        self.url = f"https://127.0.0.1:{api_port}"
        self._spawn("kube-apiserver", [
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}", "--bind-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(certs / "apiserver.crt"), "--tls-private-key-file", str(certs / "apiserver.key"),
            "--client-ca-file", str(certs / "ca.crt"), "--token-auth-file", str(certs / "tokens.csv"),
            "--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.96.0.0/24",
            "--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", str(certs / "sa.pub"),
            "--service-account-signing-key-file", str(certs / "sa.key"), "--cert-dir", str(certs),
            "--disable-admission-plugins", "ServiceAccount", "--enable-priority-and-fairness=false",
            "--storage-media-type", "application/json", "--v", "1", *self._audit_flags(),
        ])
        ca = str(certs / "ca.crt")
        self.kubeconfig_path.write_text(kubeconfig_text(self.url, certs / "ca.crt", self.admin_token, "ssvm-test-admin"))
        self.operator_kubeconfig_path.write_text(kubeconfig_text(self.url, certs / "ca.crt", self.operator_token, OPERATOR_USER,
                                                                 OPERATOR_NAMESPACE))
        self._wait(lambda: _http_ok(f"{self.url}/readyz", ca, self.admin_token), timeout, "kube-apiserver")
        self.admin_request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": OPERATOR_NAMESPACE}})
        self._spawn("kube-controller-manager", [
            "--kubeconfig", str(self.kubeconfig_path), "--controllers", CONTROLLERS, "--leader-elect=false",
            "--secure-port", "0", "--v", "1",
        ])
        time.sleep(0.2)
        if self.processes["kube-controller-manager"].poll() is not None:
            raise RuntimeError(f"kube-controller-manager exited:\n{self.logs('kube-controller-manager')}")

    @property
    def audit_log_path(self) -> pathlib.Path:
        return self.workdir / "audit.log"

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(json.dumps({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                      "omitStages": ["RequestReceived", "ResponseStarted"], "rules": [{"level": "Metadata"}]}))
        return ["--audit-policy-file", str(policy), "--audit-log-path", str(self.audit_log_path), "--audit-log-mode", "blocking"]

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Resource requests from the audit log, shaped as the dev cluster's request log (`seq` counts from 1)."""
        out: list[dict[str, Any]] = []
        lines = self.audit_log_path.read_text().splitlines() if self.audit_log_path.exists() else []
        for seq, line in enumerate(lines, start=1):
            if seq <= since:
                continue
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            out.append({"seq": seq, "verb": event.get("verb", ""), "group": ref.get("apiGroup", ""), "resource": ref.get("resource", ""),
                        "subresource": ref.get("subresource", ""), "namespace": ref.get("namespace"),
                        "user": (event.get("user") or {}).get("username", ""), "userAgent": event.get("userAgent", ""),
                        "code": (event.get("responseStatus") or {}).get("code")})
        return out

    def admin_request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call as the admin (for setting the cluster up; tests use kubectl or a client)."""
        context = ssl.create_default_context(cafile=str(self.workdir / "pki" / "ca.crt"))
        request = urllib.request.Request(self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.load(response)

    def _wait(self, ready: Any, timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.processes[name].returncode}:\n{self.logs(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{name} was not ready within {timeout:.0f}s:\n{self.logs(name)}")

    def stop(self, timeout: float = 10.0) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _http_ok(url: str, ca_file: str | None = None, token: str | None = None) -> bool:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False
