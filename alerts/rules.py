"""The alert rules as data: `alerts/rules.yaml` parsed and checked into `Rule` objects.

Loading fails with a clear message on a malformed file (at start, never mid-stream). How a
rule is evaluated is in `alerts/evaluate.py`; this module only says what the rules are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.model import Severity

RULES_PATH = Path(__file__).with_name("rules.yaml")
TYPES = ("ladder", "nodata", "anomaly", "offline")
AGGREGATES = ("mean", "sum", "rise")


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    at: float
    severity: Severity


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: str
    severity: Severity = Severity.WARNING  # nodata / anomaly; ladders per level
    kind: str | None = None
    field: str | None = None
    unit: str | None = None
    levels: tuple[Level, ...] = ()
    hysteresis: float = 0.0
    for_s: float = 0.0
    window_s: float = 0.0
    aggregate: str | None = None
    strict: bool = False
    below: bool = False  # direction: below (a level is reached when the value falls to it)
    gate_field: str | None = None  # only evaluated while this field is >= gate_at
    gate_at: float = 0.0
    from_registry: bool = False
    open_from: int = 1  # rank of the lowest level that opens an episode
    k: float = 3.0  # nodata: silent for k x interval
    clear_after_s: float = 600.0  # anomaly

    def level_at(self, rank: int) -> Level | None:
        return self.levels[rank - 1] if 1 <= rank <= len(self.levels) else None

    def next_level(self, rank: int) -> str | None:
        return self.levels[rank].name if rank < len(self.levels) else None


class RuleError(ValueError):
    pass


def load_rules(path: Path | None = None) -> dict[str, Rule]:
    raw = yaml.safe_load((path or RULES_PATH).read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), dict):
        raise RuleError(f"{path or RULES_PATH}: expected a mapping with `rules:`")
    return {rule_id: parse_rule(rule_id, spec) for rule_id, spec in raw["rules"].items()}


def parse_rule(rule_id: str, spec: Any) -> Rule:
    if not isinstance(spec, dict):
        raise RuleError(f"rule {rule_id}: expected a mapping")
    kind = spec.get("type")
    if kind not in TYPES:
        raise RuleError(f"rule {rule_id}: type must be one of {', '.join(TYPES)}")
    common: dict[str, Any] = {
        "id": rule_id,
        "type": kind,
        "severity": Severity(spec.get("severity", "warning")),
        "for_s": float(spec.get("for_s", 0)),
    }
    if kind == "nodata":
        return Rule(**common, k=float(spec.get("k", 3)))
    if kind == "anomaly":
        return Rule(**common, clear_after_s=float(spec.get("clear_after_s", 600)))
    if kind == "offline":
        return Rule(**common)
    levels = tuple(
        Level(str(lv["name"]), float(lv["at"]), Severity(lv.get("severity", "warning")))
        for lv in spec.get("levels", [])
    )
    if not levels:
        raise RuleError(f"rule {rule_id}: a ladder needs levels")
    ats = [lv.at for lv in levels]
    below = spec.get("direction", "above") == "below"
    if ats != sorted(ats, reverse=below) or any(not math.isfinite(a) for a in ats):
        raise RuleError(f"rule {rule_id}: levels must be finite and in order of severity")
    aggregate = spec.get("aggregate")
    window_s = float(spec.get("window_s", 0))
    if (aggregate is None) != (window_s == 0) or (aggregate and aggregate not in AGGREGATES):
        raise RuleError(f"rule {rule_id}: window_s and aggregate ({AGGREGATES}) go together")
    names = [lv.name for lv in levels]
    open_from = spec.get("open_from")
    if open_from is not None and open_from not in names:
        raise RuleError(f"rule {rule_id}: open_from {open_from!r} is not one of its levels")
    gate = spec.get("gate") or {}
    return Rule(
        **common,
        kind=str(spec["kind"]),
        field=str(spec["field"]),
        unit=spec.get("unit"),
        levels=levels,
        hysteresis=float(spec.get("hysteresis", 0)),
        window_s=window_s,
        aggregate=aggregate,
        strict=bool(spec.get("strict", False)),
        below=below,
        gate_field=gate.get("field"),
        gate_at=float(gate.get("at", 0)),
        from_registry=bool(spec.get("from_registry", False)),
        open_from=names.index(open_from) + 1 if open_from else 1,
    )
