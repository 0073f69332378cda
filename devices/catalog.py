"""The sensor catalog: kinds of device and the fields, units and physical ranges they report.

Loaded from `catalog.yaml` (or another file) so a new kind or field needs no code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    unit: str
    min: float
    max: float
    description: str = ""

    def in_range(self, value: float) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class KindSpec:
    name: str
    description: str
    interval_s: float
    fields: dict[str, FieldSpec]


@dataclass(frozen=True)
class SensorCatalog:
    kinds: dict[str, KindSpec]
    common_fields: dict[str, FieldSpec]

    def field(self, kind: str, name: str) -> FieldSpec | None:
        """The spec of field `name` for a device of `kind` (kind fields, then common ones)."""
        spec = self.kinds.get(kind)
        if spec is None:
            return None
        return spec.fields.get(name) or self.common_fields.get(name)

    def kind_of_fields(self, names: set[str]) -> str | None:
        """The one kind whose fields include every non-common name, if exactly one does."""
        specific = names - self.common_fields.keys()
        if not specific:
            return None
        matches = [k for k, spec in self.kinds.items() if specific <= spec.fields.keys()]
        return matches[0] if len(matches) == 1 else None

    def all_fields(self, kind: str) -> dict[str, FieldSpec]:
        return {**self.kinds[kind].fields, **self.common_fields}


def _field(name: str, raw: dict[str, object]) -> FieldSpec:
    return FieldSpec(
        name=name,
        unit=str(raw["unit"]),
        min=float(raw["min"]),  # type: ignore[arg-type]
        max=float(raw["max"]),  # type: ignore[arg-type]
        description=str(raw.get("description", "")),
    )


def load_catalog(path: Path = DEFAULT_CATALOG_PATH) -> SensorCatalog:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    common = {n: _field(n, f) for n, f in (raw.get("common_fields") or {}).items()}
    kinds = {
        name: KindSpec(
            name=name,
            description=str(k.get("description", "")),
            interval_s=float(k.get("interval_s", 60)),
            fields={n: _field(n, f) for n, f in k["fields"].items()},
        )
        for name, k in raw["kinds"].items()
    }
    return SensorCatalog(kinds=kinds, common_fields=common)


@cache
def default_catalog() -> SensorCatalog:
    return load_catalog()
