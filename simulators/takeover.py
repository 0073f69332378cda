"""Which simulator drives a device, when more than one runs on this machine.

`pantau up` runs the city's simulators all the time. A scenario run by hand beside it
(`pantau simulate --scenario flood-malili --speed 60`) drives the same device ids; if both
published, a gauge's series would alternate between the normal day and the flood. So the
hand-run simulator *claims* its devices — a file `var/simulate/takeover/<pid>.json` listing
them, removed when it ends — and the stack's simulator (started with `--yield`) leaves the
claimed devices alone while the claiming process lives (a crashed claimer's file is ignored:
its pid is gone). Local files, because both run beside one `var/` directory; no broker or
database round trip per tick.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

RESCAN_S = 2.0


def takeover_dir(var_dir: Path) -> Path:
    return var_dir / "simulate" / "takeover"


@contextlib.contextmanager
def claim(var_dir: Path, device_ids: Sequence[str]) -> Iterator[Path]:
    """Claim `device_ids` for this process until the block ends."""
    folder = takeover_dir(var_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "devices": list(device_ids)}))
    tmp.replace(path)  # atomic: a reader never sees half a list
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimedDevices:
    """The devices other live processes have claimed, re-read at most every `rescan_s`."""

    def __init__(self, var_dir: Path, rescan_s: float = RESCAN_S) -> None:
        self.folder = takeover_dir(var_dir)
        self.rescan_s = rescan_s
        self._claimed: frozenset[str] = frozenset()
        self._read_at = -float("inf")

    def current(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at < self.rescan_s:
            return self._claimed
        self._read_at = now
        claimed: set[str] = set()
        for path in self.folder.glob("*.json") if self.folder.is_dir() else ():
            try:
                document = json.loads(path.read_text())
                pid = int(document["pid"])
                devices = [str(d) for d in document["devices"]]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written, or not ours: ignore
            if pid != os.getpid() and _alive(pid):
                claimed.update(devices)
        if claimed != self._claimed:
            log.info(
                "%d devices driven by another simulator: not publishing them%s",
                len(claimed),
                "" if claimed else " (none now)",
            )
        self._claimed = frozenset(claimed)
        return self._claimed
