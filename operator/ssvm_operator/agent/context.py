"""What every action gets: the paths, the effect layer, and whether the guest is simulated."""
from __future__ import annotations

from dataclasses import dataclass

from ssvm_operator.agent.effects import Effects
from ssvm_operator.agent.paths import AgentPaths


@dataclass
class ActionContext:
    paths: AgentPaths
    effects: Effects

    @property
    def simulated(self) -> bool:
        return self.effects.simulated
