"""The kube layer as the controllers receive it at registration: one client, one status writer, one
record of unseen writes, one Event poster and the loops' wake-ups, shared by every controller."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssvm_operator.kube.client import KubeClient, load_api_client
from ssvm_operator.kube.events import EventPoster
from ssvm_operator.kube.status import StatusWriter
from ssvm_operator.kube.unseen import UnseenWrites
from ssvm_operator.kube.wakeups import Wakeups


@dataclass
class Kube:
    client: KubeClient
    status: StatusWriter
    unseen: UnseenWrites
    events: EventPoster
    wakeups: Wakeups

    @classmethod
    def connect(cls, api_client: Any = None) -> "Kube":
        """On `api_client`, else the in-cluster service account or the current kubeconfig."""
        client = KubeClient(api_client or load_api_client())
        unseen = UnseenWrites()
        return cls(client, StatusWriter(client, unseen), unseen, EventPoster(client), Wakeups())
