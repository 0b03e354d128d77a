"""A tiny model of one iptables table: parse `iptables-save`, apply `iptables-restore --noflush`
text, render `iptables -S`. The simulated guest records its firewall with it; the real mode uses
only the parser, to see which jump rules already exist."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

BUILTIN_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT")}


class RestoreError(ValueError):
    """The restore text does not apply (unknown chain, rule to delete not found)."""


@dataclass
class Table:
    name: str = "filter"
    policies: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # insertion order = creation order

    @classmethod
    def empty(cls, name: str = "filter") -> "Table":
        builtins = BUILTIN_CHAINS.get(name, ())
        return cls(name, {c: "ACCEPT" for c in builtins}, {c: [] for c in builtins})

    def to_json(self) -> dict:
        # Lists of pairs, not objects: chain order is meaningful and JSON writers may sort keys.
        return {"name": self.name, "policies": [[c, p] for c, p in self.policies.items()],
                "chains": [[c, list(r)] for c, r in self.chains.items()]}

    @classmethod
    def from_json(cls, data: dict) -> "Table":
        return cls(data["name"], {c: p for c, p in data["policies"]}, {c: list(r) for c, r in data["chains"]})

    def render_rules(self) -> list[str]:
        """Lines as `iptables -S` prints them: policies, user chains, then each chain's rules."""
        lines = [f"-P {c} {p}" for c, p in self.policies.items()]
        lines += [f"-N {c}" for c in self.chains if c not in self.policies]
        for chain, rules in self.chains.items():
            lines += [f"-A {chain} {r}" for r in rules]
        return lines

    def jumps_to(self, target: str) -> list[tuple[str, str]]:
        """(chain, rule spec) of every rule that jumps to `target`."""
        return [(c, r) for c, rules in self.chains.items() for r in rules if _jump_target(r) == target]


def _jump_target(spec: str) -> str | None:
    parts = shlex.split(spec)
    for i, word in enumerate(parts[:-1]):
        if word in ("-j", "--jump"):
            return parts[i + 1]
    return None


def parse_save(text: str, table: str = "filter") -> Table:
    """The `table` section of `iptables-save` output (empty table if it is absent)."""
    result = Table(table)
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = line[1:]
            continue
        if current != table or line == "COMMIT":
            continue
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if policy != "-":
                result.policies[name] = policy
            result.chains.setdefault(name, [])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            result.chains.setdefault(chain, []).append(spec)
    if not result.chains:
        return Table.empty(table)
    return result


def apply_restore(table: Table, text: str) -> Table:
    """Apply `iptables-restore --noflush` text to a copy of `table`; all or nothing, like a COMMIT."""
    new = Table.from_json(table.to_json())
    active = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            active = line[1:]
            continue
        if line == "COMMIT":
            active = None
            continue
        if active != table.name:
            continue
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if policy != "-":
                new.policies[name] = policy
                new.chains.setdefault(name, [])
            else:
                new.chains[name] = []  # declaring a user chain with --noflush empties it
            continue
        opt, rest = line.split(" ", 1) if " " in line else (line, "")
        chain, _, spec = rest.partition(" ")
        if opt not in ("-X",) and chain not in new.chains:
            raise RestoreError(f"no chain {chain!r}")
        if opt == "-A":
            new.chains[chain].append(spec)
        elif opt == "-I":
            pos, _, tail = spec.partition(" ")
            if pos.isdigit():
                new.chains[chain].insert(int(pos) - 1, tail)
            else:
                new.chains[chain].insert(0, spec)
        elif opt == "-D":
            if spec not in new.chains[chain]:
                raise RestoreError(f"rule not found in {chain}: {spec}")
            new.chains[chain].remove(spec)
        elif opt == "-X":
            if new.jumps_to(chain):
                raise RestoreError(f"chain {chain} is still referenced")
            new.chains.pop(chain, None)
        else:
            raise RestoreError(f"unsupported restore line: {line}")
    return new
