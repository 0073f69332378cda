"""A scenario run by hand beside `pantau up`: it claims its devices (the stack's simulators
leave them alone while it lives) and can stamp its readings with the present time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

from simulators.runner import Engine
from simulators.scenario import load_scenario
from simulators.takeover import ClaimedDevices, claim, takeover_dir

MONDAY = 1_795_483_200.0  # 2026-11-23 00:00 UTC, a Monday


def test_claimed_devices_are_seen_while_the_claimer_lives(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from simulators.takeover import claim\n"
        "with claim(Path(sys.argv[1]), ['wl-malili-01', 'wl-malili-02']):\n"
        "    print('claimed', flush=True)\n"
        "    time.sleep(30)\n"
    )
    claimer = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert claimer.stdout is not None and claimer.stdout.readline().strip() == "claimed"
        seen = ClaimedDevices(tmp_path, rescan_s=0.0)
        assert seen.current() == {"wl-malili-01", "wl-malili-02"}
        with claim(tmp_path, ["env-wotu-01"]):  # this process's own claim is not yielded to
            assert seen.current() == {"wl-malili-01", "wl-malili-02"}
        claimer.kill()  # a crash: its file stays, but its pid is gone
        claimer.wait(10)
        assert list(takeover_dir(tmp_path).glob("*.json"))
        assert seen.current() == frozenset()
    finally:
        claimer.kill()


def test_a_claim_file_that_is_not_ours_or_half_written_is_ignored(tmp_path: Path) -> None:
    folder = takeover_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "1.json").write_text('{"pid": 1, "devi')  # torn
    (folder / "2.json").write_text(json.dumps({"devices": ["x"]}))  # no pid
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / "3.json").write_text(json.dumps({"pid": live.pid, "devices": ["wl-a"]}))
        assert ClaimedDevices(tmp_path, rescan_s=0.0).current() == {"wl-a"}
    finally:
        live.kill()
        live.wait(10)
    assert os.getpid() != live.pid


def test_present_stamping_shifts_the_device_clocks_only() -> None:
    """The physics runs on simulated time; the published timestamps move by the shift."""
    scenario = load_scenario("flood-malili")
    replay = Engine(scenario, start_s=MONDAY, interval_s=60.0, seed=3)
    present = Engine(scenario, start_s=MONDAY, interval_s=60.0, seed=3)
    shift = time.time() - MONDAY
    present.stamp_shift_s = shift
    compared = 0
    for k in range(5):
        a, b = replay.tick(MONDAY + 60.0 * k), present.tick(MONDAY + 60.0 * k)
        assert len(a.messages) == len(b.messages) > 0
        for ma, mb in zip(a.messages, b.messages, strict=True):
            if not ma.topic.endswith("/telemetry") or ma.content_type != "application/json":
                continue
            ra, rb = orjson.loads(ma.payload), orjson.loads(mb.payload)
            if not isinstance(ra, dict) or "ts" not in ra:
                continue
            assert abs(rb["ts"] - ra["ts"] - shift * 1000) <= 1
            compared += 1
            assert {k: v for k, v in ra.items() if k != "ts"} == {
                k: v for k, v in rb.items() if k != "ts"
            }
    assert compared > 20
