"""The layout the user asked for, and a docstring on every module saying its job."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = [
    "pantau",
    "people",
    "devices",
    "alerts",
    "ingest",
    "simulators",
    "dashboards",
    "api",
    "stack",
    "bench",
    "fuzz",
]


def test_top_level_layout() -> None:
    for name in ["ingest", "devices", "api", "dashboards", "simulators", "tests"]:
        assert (REPO / name).is_dir(), name
    for name in [
        "README.md",
        "ARCHITECTURE.md",
        "docker-compose.yml",
        "pyproject.toml",
        "Makefile",
        ".ci/run",
        ".env.example",
    ]:
        assert (REPO / name).is_file(), name
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci/run").read_text()


def test_every_module_says_what_it_is_for() -> None:
    missing = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if not ast.get_docstring(tree) and path.stat().st_size > 0:
                missing.append(str(path.relative_to(REPO)))
    assert missing == []
