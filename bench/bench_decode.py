"""Decode + validate + line-protocol throughput of the pipeline's CPU stages, one core."""

from __future__ import annotations

import time

import orjson

from bench.common import write_result
from devices.catalog import default_catalog
from ingest.decode import decode_payload
from ingest.points import reading_to_line
from ingest.validate import Validator


def run(n: int = 50_000) -> dict[str, float]:
    now_ms = int(time.time() * 1000)
    payloads = [
        orjson.dumps({"ts": now_ms - i, "seq": i, "level_cm": 100 + i % 50, "battery_v": 12.5})
        for i in range(n)
    ]
    validator = Validator(default_catalog(), future_tolerance_s=300, retention_days=400)
    started = time.perf_counter()
    for payload in payloads:
        readings = validator.validate("wl-malili-01", decode_payload(payload), now_ms)
        for reading in readings:
            reading_to_line(reading)
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 3), "messages_per_s": round(n / elapsed)}


def main() -> None:
    write_result("decode_validate_format", run())


if __name__ == "__main__":
    main()
