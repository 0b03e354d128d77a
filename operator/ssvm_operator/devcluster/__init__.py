"""The embedded dev cluster: an emulated Kubernetes API (built on kmock) that kubectl, kopf and
the operator talk to over HTTP. See docs/devcluster.md.
"""
from __future__ import annotations

from .server import DevCluster, DevClusterEmulator, serve, write_kubeconfig
from .simulators import ApiClient, Simulator, register

__all__ = ["ApiClient", "DevCluster", "DevClusterEmulator", "Simulator", "register", "serve", "write_kubeconfig"]
