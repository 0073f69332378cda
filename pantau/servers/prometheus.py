"""A Prometheus server (Debian's `prometheus`) run as a child process, scraping Pantau's
ingesters with the production scrape config (deploy/prometheus/prometheus.yml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import yaml

from pantau.servers.binaries import find_binary
from pantau.servers.process import ManagedProcess, port_open, wait_until

log = logging.getLogger(__name__)

PRODUCTION_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yml"


def render_config(
    targets: list[str], scrape_interval_s: float, base: Path = PRODUCTION_CONFIG
) -> str:
    """The production config with its ingest targets and intervals replaced."""
    config: dict[str, Any] = yaml.safe_load(base.read_text(encoding="utf-8"))
    interval = f"{int(scrape_interval_s * 1000)}ms"
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pantau-ingest"]
    job["static_configs"] = [{"targets": targets}]
    return yaml.safe_dump(config, sort_keys=False)


class PrometheusServer:
    """`prometheus` on 127.0.0.1:`port`, its TSDB under `base_dir`."""

    def __init__(
        self, base_dir: Path, port: int, targets: list[str], scrape_interval_s: float = 1.0
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.port = port
        self.targets = targets
        self.scrape_interval_s = scrape_interval_s
        self.config_path = self.base_dir / "prometheus.yml"
        self.process = ManagedProcess(
            "prometheus",
            [
                find_binary("prometheus", "prometheus"),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            self.base_dir / "prometheus.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout_s: float = 30.0) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.targets, self.scrape_interval_s))
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken: cannot start Prometheus there")
        self.process.start()
        wait_until(self.healthy, timeout_s, f"Prometheus on port {self.port}", proc=self.process)
        log.info("prometheus ready on %s (pid %s)", self.url, self.process.pid)

    def stop(self) -> None:
        self.process.stop(timeout_s=10.0)
