"""A small client for the InfluxDB v1 HTTP API: /ping, /write (line protocol) and /query.

InfluxDB 1.x serves this API natively; 2.x and 3.x serve it through their v1 compatibility
endpoints, so Pantau speaks only this. Written by hand on httpx because the official
`influxdb` 1.x Python client is unmaintained and the 2.x client does not speak InfluxQL;
what we need is three HTTP calls and a precise classification of their errors, which the
write path relies on (retry, isolate, or give up).
"""

from __future__ import annotations

import gzip as gzip_module
import re
from dataclasses import dataclass
from typing import Any

import httpx

from pantau.settings import InfluxSettings


class InfluxError(Exception):
    """Any failure talking to InfluxDB."""


class InfluxUnavailableError(InfluxError):
    """Retry later: connection refused/reset, timeout, 5xx, 429. `retry_after_s` if told."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InfluxRejectedError(InfluxError):
    """The request itself is bad (4xx). For writes, `partial` means the other lines were kept."""

    def __init__(self, message: str, status: int, partial: bool = False, dropped: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.partial = partial
        self.dropped = dropped


@dataclass(frozen=True)
class Series:
    """One series of an InfluxQL result."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


HOURLY_CQ = "pantau_hourly_rollup"
_DROPPED = re.compile(r"dropped=(\d+)")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxClient:
    """Synchronous v1 API client; one per thread of use (httpx.Client is not shared)."""

    def __init__(self, settings: InfluxSettings, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        auth = None
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._http = httpx.Client(
            base_url=settings.url,
            timeout=settings.timeout_s,
            auth=auth,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 204
        except httpx.HTTPError:
            return False

    def write(
        self,
        body: bytes,
        *,
        database: str | None = None,
        retention_policy: str | None = None,
        precision: str = "ms",
    ) -> None:
        """POST line protocol. Raises InfluxUnavailableError (retry) or InfluxRejectedError."""
        params = {
            "db": database or self.settings.database,
            "rp": retention_policy or self.settings.retention_policy,
            "precision": precision,
        }
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = gzip_module.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._http.post("/write", params=params, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise InfluxUnavailableError(f"write failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 204:
            return
        self._raise_for(response, "write")

    def query(
        self, q: str, *, database: str | None = None, epoch: str = "ms", method: str = "GET"
    ) -> list[list[Series]]:
        """Run InfluxQL; one list of series per statement. Errors in a statement raise."""
        params = {"q": q, "db": database or self.settings.database, "epoch": epoch}
        try:
            if method == "POST":
                response = self._http.post("/query", data=params)
            else:
                response = self._http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise InfluxUnavailableError(f"query failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            self._raise_for(response, "query")
        results: list[list[Series]] = []
        for result in response.json().get("results", []):
            if "error" in result:
                raise InfluxRejectedError(f"query error: {result['error']}", status=400)
            results.append(
                [
                    Series(
                        name=s.get("name", ""),
                        tags=s.get("tags") or {},
                        columns=s["columns"],
                        values=s.get("values") or [],
                    )
                    for s in result.get("series", [])
                ]
            )
        return results

    def execute(self, q: str, *, database: str | None = None) -> list[list[Series]]:
        """Run a statement that changes something (CREATE, ALTER, DROP): POST, as 1.x wants."""
        return self.query(q, database=database, method="POST")

    def ensure_database(self) -> None:
        """Create the database, its retention policies and the downsampling query.

        Raw readings go to `retention_policy` (the default, `retention_days`). A continuous
        query rolls every numeric field of every measurement up into hourly mean, min and
        max in the `hourly_retention_policy` (`hourly_retention_days`), for long trends.
        """
        db = self.settings.database
        self.execute(f"CREATE DATABASE {quote_ident(db)}", database="")
        existing = self.query(f"SHOW RETENTION POLICIES ON {quote_ident(db)}", database=db)
        names = {row["name"] for s in existing[0] for row in s.rows()} if existing else set()
        policies = [
            (self.settings.retention_policy, self.settings.retention_days, " DEFAULT"),
            (self.settings.hourly_retention_policy, self.settings.hourly_retention_days, ""),
        ]
        for rp, days, default in policies:
            verb = "ALTER" if rp in names else "CREATE"
            replication = "" if verb == "ALTER" else " REPLICATION 1"
            self.execute(
                f"{verb} RETENTION POLICY {quote_ident(rp)} ON {quote_ident(db)} "
                f"DURATION {days}d{replication}{default}",
                database=db,
            )
        cqs = self.query("SHOW CONTINUOUS QUERIES", database=db)
        have = {row["name"] for s in cqs[0] if s.name == db for row in s.rows()} if cqs else set()
        if HOURLY_CQ not in have:
            self.execute(
                f"CREATE CONTINUOUS QUERY {quote_ident(HOURLY_CQ)} ON {quote_ident(db)} "
                f"BEGIN {self.hourly_rollup_select()} GROUP BY time(1h), * END",
                database=db,
            )

    def hourly_rollup_select(self) -> str:
        """The SELECT … INTO of the hourly roll-up (also usable to backfill a time range)."""
        db = quote_ident(self.settings.database)
        raw = quote_ident(self.settings.retention_policy)
        hourly = quote_ident(self.settings.hourly_retention_policy)
        return (
            f"SELECT mean(*), min(*), max(*) INTO {db}.{hourly}.:MEASUREMENT FROM {db}.{raw}./.*/"
        )

    @staticmethod
    def _raise_for(response: httpx.Response, what: str) -> None:
        status = response.status_code
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        if status == 429 or status >= 500:
            retry_after: float | None = None
            header = response.headers.get("Retry-After")
            if header is not None:
                try:
                    retry_after = max(0.0, float(header))
                except ValueError:
                    retry_after = None
            raise InfluxUnavailableError(f"{what}: HTTP {status}: {message}", retry_after)
        partial = "partial write" in message or status == 422
        match = _DROPPED.search(message)
        raise InfluxRejectedError(
            f"{what}: HTTP {status}: {message}",
            status=status,
            partial=partial,
            dropped=int(match.group(1)) if match else 0,
        )
