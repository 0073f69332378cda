"""The field console in a real browser: Debian's Chromium, headless, driven by Playwright,
against a real `pantau up` stack on free ports (Mosquitto, InfluxDB, ingester, API, two
simulated devices). Every request the page makes is recorded: none may leave 127.0.0.1.
axe-core (from the pinned axe-playwright-python package, injected here) checks accessibility.
Screenshots at 360 x 740 go to docs/console/."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pantau.servers.process import free_port
from tests.conftest import REPO, eventually

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# CONSOLE_SCREENSHOTS=1 refreshes the README's screenshots; otherwise they go to a temp dir.
SHOTS = REPO / "docs" / "console"
PHONE = {"width": 360, "height": 740}

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # scripts/debian-packages.sh installs it
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def axe_script() -> Path:
    import axe_playwright_python

    return Path(axe_playwright_python.__file__).parent / "axe.min.js"


@dataclass
class Stack:
    api: str
    env: dict[str, str]
    mqtt_port: int
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console")
    api_port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update(
        {
            "PANTAU_STACK__VAR_DIR": str(tmp / "var"),
            "PANTAU_STACK__MOSQUITTO_PORT": str(mqtt_port),
            "PANTAU_STACK__INFLUX_PORT": str(free_port()),
            "PANTAU_STACK__INFLUX_RPC_PORT": str(free_port()),
            "PANTAU_API__PORT": str(api_port),
            "PANTAU_INGEST__METRICS_PORT": str(free_port()),
            "PANTAU_SIMULATE__INTERVAL_S": "2",
        }
    )
    log_path = tmp / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "stack", "up", "--devices", "2"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        api = f"http://127.0.0.1:{api_port}"

        def api_up() -> bool:
            try:
                return httpx.get(f"{api}/health").status_code == 200
            except httpx.HTTPError:
                return False

        eventually(api_up, timeout_s=90, what="the API of pantau up")
        running = Stack(api=api, env=env, mqtt_port=mqtt_port)
        for role in ("viewer", "technician", "responder"):
            made = subprocess.run(
                [sys.executable, "-m", "stack", "users", "create", f"{role}-1", "--role", role],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            running.tokens[role] = made.stdout.strip()
        yield running
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


@dataclass
class Browser:
    page: object
    hosts: set[str]
    scratch: Path


@pytest.fixture
def browser(stack: Stack, tmp_path: Path) -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        context = chromium.new_context(viewport=PHONE, device_scale_factor=1)
        page = context.new_page()
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
        page.set_default_timeout(20_000)
        try:
            yield Browser(page=page, hosts=hosts, scratch=tmp_path)
        finally:
            context.close()
            chromium.close()


def sign_in(page: object, stack: Stack, role: str) -> None:
    page.goto(f"{stack.api}/console/")  # type: ignore[attr-defined]
    page.fill("#token", stack.tokens[role])  # type: ignore[attr-defined]
    page.click("form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#sign-out")  # type: ignore[attr-defined]


def serious_violations(page: object) -> list[str]:
    page.add_script_tag(path=str(axe_script()))  # type: ignore[attr-defined]
    result = page.evaluate("async () => await axe.run(document)")  # type: ignore[attr-defined]
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: {v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def no_horizontal_scroll(page: object) -> bool:
    return bool(
        page.evaluate(  # type: ignore[attr-defined]
            "() => document.documentElement.scrollWidth <= window.innerWidth"
        )
    )


def shot(browser: Browser, name: str) -> None:
    page = browser.page
    folder = SHOTS if os.environ.get("CONSOLE_SCREENSHOTS") == "1" else browser.scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_docs_are_served_offline(stack: Stack) -> None:
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{stack.api}{path}").text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(
            r"""url:\s*['"]([^'"]+)""", html
        )
        assert urls, html[:500]
        external = [u for u in urls if urlsplit(u).hostname not in (None, "127.0.0.1")]
        assert external == [], f"{path} loads from elsewhere: {external}"
        assert "cdn" not in html.lower()
    assert httpx.get(f"{stack.api}/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_viewer_sees_devices_but_no_register_form(stack: Stack, browser: Browser) -> None:
    page = browser.page
    sign_in(page, stack, "viewer")
    # Bahasa Indonesia by default, the simulated devices with their latest values and WITA times.
    assert page.get_attribute("html", "lang") == "id"  # type: ignore[attr-defined]
    card = page.locator('[data-device="wl-malili-01"]')  # type: ignore[attr-defined]
    card.wait_for()
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => document.querySelector('[data-device="wl-malili-01"] .last-seen')
              .textContent.includes('WITA')""",
        timeout=60_000,
    )
    assert "level_cm" in card.inner_text()
    assert "Terakhir terlihat" in card.inner_text()
    # Search narrows the list.
    page.fill("#q", "malili")  # type: ignore[attr-defined]
    page.click("form.filters button")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => { const cards = [...document.querySelectorAll('#device-list [data-device]')];
                   return location.hash.includes('q=malili') && cards.length > 0
                     && cards.every((c) => c.textContent.toLowerCase().includes('malili')); }"""
    )
    # A viewer has no Register link, and the page itself shows no form.
    assert page.locator('nav a[href="#/register"]').count() == 0  # type: ignore[attr-defined]
    page.goto(f"{stack.api}/console/#/register")  # type: ignore[attr-defined]
    page.wait_for_selector("main h1")  # type: ignore[attr-defined]
    assert page.locator("#register-form").count() == 0  # type: ignore[attr-defined]
    assert page.locator("main").inner_text().find("hanya bisa melihat") >= 0  # type: ignore[attr-defined]
    # The English switch.
    page.goto(f"{stack.api}/console/#/devices")  # type: ignore[attr-defined]
    page.select_option("#lang", "en")  # type: ignore[attr-defined]
    page.wait_for_selector("text=Last seen")  # type: ignore[attr-defined]
    assert page.get_attribute("html", "lang") == "en"  # type: ignore[attr-defined]
    page.select_option("#lang", "id")  # type: ignore[attr-defined]
    page.wait_for_selector("text=Terakhir terlihat")  # type: ignore[attr-defined]
    assert no_horizontal_scroll(page)
    assert serious_violations(page) == []
    shot(browser, "devices")
    # The offline map and a gauge's 24 h with its rate of rise.
    page.click('nav a[href="#/map"]')  # type: ignore[attr-defined]
    page.wait_for_selector("svg.map-svg a")  # type: ignore[attr-defined]
    assert "Malili" in (page.text_content("svg.map-svg") or "")  # type: ignore[attr-defined]
    assert no_horizontal_scroll(page)
    shot(browser, "map")
    page.goto(f"{stack.api}/console/#/device/wl-malili-01")  # type: ignore[attr-defined]
    page.wait_for_selector("svg.chart circle.last")  # type: ignore[attr-defined]
    assert serious_violations(page) == []
    shot(browser, "gauge")
    # Sign-out forgets the token.
    page.click("#sign-out")  # type: ignore[attr-defined]
    page.wait_for_selector("#token")  # type: ignore[attr-defined]
    assert page.evaluate("() => localStorage.getItem('pantau.token')") is None  # type: ignore[attr-defined]
    assert browser.hosts == {"127.0.0.1"}, browser.hosts


def test_technician_registers_a_device_and_sees_it_report(stack: Stack, browser: Browser) -> None:
    page = browser.page
    sign_in(page, stack, "technician")
    page.click('nav a[href="#/register"]')  # type: ignore[attr-defined]
    page.fill("#id", "wl-console-01")  # type: ignore[attr-defined]
    page.select_option("#kind", "water_level")  # type: ignore[attr-defined]
    page.fill("#name", "Gauge from the console")  # type: ignore[attr-defined]
    page.fill("#district", "Malili")  # type: ignore[attr-defined]
    # Coordinates from the phone's geolocation.
    page.context.grant_permissions(["geolocation"])  # type: ignore[attr-defined]
    page.context.set_geolocation({"latitude": -2.6414, "longitude": 121.0986})  # type: ignore[attr-defined]
    page.click("text=Pakai lokasi ponsel")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.getElementById('latitude').value === '-2.641400'"
    )
    assert page.input_value("#longitude") == "121.098600"  # type: ignore[attr-defined]
    page.fill("#th-waspada", "250")  # type: ignore[attr-defined]
    page.fill("#th-siaga", "300")  # type: ignore[attr-defined]
    page.fill("#th-awas", "350")  # type: ignore[attr-defined]
    assert serious_violations(page) == []
    page.click("#register-form button[type=submit]")  # type: ignore[attr-defined]
    line = page.inner_text("#mqtt-line", timeout=20_000)  # type: ignore[attr-defined]
    password = page.inner_text("#mqtt-password")  # type: ignore[attr-defined]
    assert f"-p {stack.mqtt_port} -u wl-console-01 -P '{password}'" in line
    assert no_horizontal_scroll(page)
    shot(browser, "register")
    device = httpx.get(
        f"{stack.api}/devices/wl-console-01",
        headers={"Authorization": f"Bearer {stack.tokens['viewer']}"},
    ).json()
    assert device["thresholds"] == {"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}}
    # The list shows it never seen; the copied line, run as is, makes it report.
    page.click('nav a[href="#/devices"]')  # type: ignore[attr-defined]
    card = page.locator('[data-device="wl-console-01"]')  # type: ignore[attr-defined]
    card.wait_for()
    assert "belum pernah" in card.locator(".last-seen").inner_text()
    assert shutil.which("mosquitto_pub"), "mosquitto-clients (scripts/debian-packages.sh)"

    def reported() -> bool:
        """Run the line as is; the card must show it within seconds. The broker and the
        ingester each poll the registry (every 2 s): a reading sent between the broker's
        reload and the ingester's is dead-lettered (unknown_device), so try again then."""
        run = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=20)
        if run.returncode != 0:  # the broker has not admitted the device yet
            return False
        try:
            page.wait_for_function(  # type: ignore[attr-defined]
                """() => { const c = document.querySelector('[data-device="wl-console-01"]');
                           return c && c.querySelector('.last-seen').textContent.includes('WITA')
                             && c.textContent.includes('level_cm'); }""",
                timeout=8_000,
            )
        except playwright_sync.TimeoutError:
            return False
        return True

    eventually(reported, timeout_s=60, what="the new device's reading on its card", interval_s=1)
    assert "120 cm" in card.inner_text()  # the line's test value: min + range / 10 of level_cm
    assert browser.hosts == {"127.0.0.1"}, browser.hosts


def technician_api(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api, headers={"Authorization": f"Bearer {stack.tokens['technician']}"}
    )


def publish(stack: Stack, device_id: str, password: str, payload: str) -> None:
    topic = f"pantau/devices/{device_id}/telemetry"
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(stack.mqtt_port), "-q", "1"]
    command += ["-u", device_id, "-P", password, "-t", topic, "-m", payload]

    def sent() -> bool:  # the broker admits a new device once it reloaded its passwords
        return subprocess.run(command, capture_output=True, timeout=20).returncode == 0

    eventually(sent, timeout_s=30, what=f"mosquitto_pub as {device_id}")


def test_technician_maintains_a_device(stack: Stack, browser: Browser) -> None:
    page = browser.page
    with technician_api(stack) as client:
        made = client.post(
            "/devices",
            json={"id": "wl-care-01", "kind": "water_level", "name": "Care", "district": "Wotu"},
        )
        assert made.status_code == 201, made.text
        password = made.json()["mqtt_password"]
    publish(stack, "wl-care-01", password, "this is not json")
    sign_in(page, stack, "technician")
    # Calibrate: the version moves to 1.
    page.goto(f"{stack.api}/console/#/device/wl-care-01")  # type: ignore[attr-defined]
    page.fill("#offset", "2.5")  # type: ignore[attr-defined]
    page.click("form.card button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("text=Versi kalibrasi: 1")  # type: ignore[attr-defined]
    # Maintenance, then rotate credentials (a new password shown once), then retire.
    page.click("text=Mode perawatan")  # type: ignore[attr-defined]
    page.wait_for_selector("text=perawatan")  # type: ignore[attr-defined]
    page.wait_for_selector("text=Aktifkan")  # type: ignore[attr-defined]
    page.click("text=Ganti kata sandi MQTT")  # type: ignore[attr-defined]
    rotated = page.inner_text("section pre")  # type: ignore[attr-defined]
    assert "-u wl-care-01" in rotated and password not in rotated
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click("button.danger")  # type: ignore[attr-defined]
    page.wait_for_selector("text=pensiun")  # type: ignore[attr-defined]
    with technician_api(stack) as client:
        device = client.get("/devices/wl-care-01").json()
    assert device["status"] == "retired" and device["calibration_version"] == 1
    # Dead letters by device: the garbage payload with its reason, replayable.
    page.goto(f"{stack.api}/console/#/dead-letters?device_id=wl-care-01")  # type: ignore[attr-defined]
    page.wait_for_selector("text=this is not json", state="attached")  # type: ignore[attr-defined]
    assert "wl-care-01" in page.inner_text("main")  # type: ignore[attr-defined]
    assert page.locator("text=Kirim ulang").count() >= 1  # type: ignore[attr-defined]
    shot(browser, "dead-letters")
    # CSV import: a report per row (one created, one refused with its reason).
    page.goto(f"{stack.api}/console/#/import")  # type: ignore[attr-defined]
    csv = "id,kind,name,district\nwl-csv-01,water_level,From CSV,Malili\nBAD ID,water_level,x,y\n"
    page.set_input_files(  # type: ignore[attr-defined]
        "#csv", files=[{"name": "d.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    page.click("form.card button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#import-report table")  # type: ignore[attr-defined]
    report = page.inner_text("#import-report")  # type: ignore[attr-defined]
    assert "wl-csv-01" in report, report
    assert page.locator("#import-report tbody tr").count() == 2  # type: ignore[attr-defined]
    assert serious_violations(page) == []
    assert browser.hosts == {"127.0.0.1"}, browser.hosts


def app_has_alerts(stack: Stack) -> bool:
    return "/alerts/stream" in httpx.get(f"{stack.api}/openapi.json").json()["paths"]


def test_alerts_page_says_when_alerts_are_unavailable(stack: Stack, browser: Browser) -> None:
    if app_has_alerts(stack):
        pytest.skip("this app has /alerts: the responder test covers the page")
    page = browser.page
    sign_in(page, stack, "responder")
    page.click('nav a[href="#/alerts"]')  # type: ignore[attr-defined]
    note = page.wait_for_selector("#alerts-unavailable")  # type: ignore[attr-defined]
    assert "belum tersedia" in note.inner_text()


def test_responder_sees_an_alert_arrive_and_acknowledges_it(stack: Stack, browser: Browser) -> None:
    if not app_has_alerts(stack):
        pytest.skip("the app has no /alerts route yet (alerting, branch alerts2, not merged)")
    page = browser.page
    with technician_api(stack) as client:
        made = client.post(
            "/devices",
            json={
                "id": "wl-flood-01",
                "kind": "water_level",
                "name": "Flood gauge",
                "district": "Malili",
                "thresholds": {"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}},
            },
        )
        assert made.status_code == 201, made.text
        password = made.json()["mqtt_password"]
    sign_in(page, stack, "responder")
    page.click('nav a[href="#/alerts"]')  # type: ignore[attr-defined]
    page.wait_for_selector("#live:has-text('Langsung')")  # type: ignore[attr-defined]
    card = page.locator('[data-alert]:has-text("wl-flood-01")')  # type: ignore[attr-defined]
    seq = iter(range(1, 1000))

    banner = page.locator("#banner:has-text('wl-flood-01')")  # type: ignore[attr-defined]

    def alert_shown() -> bool:
        """One more reading far above Awas, until the alert fires on the page (rules may
        want a few readings, or some time, before an episode fires)."""
        ts = int(time.time() * 1000)
        publish(
            stack, "wl-flood-01", password, f'{{"ts": {ts}, "seq": {next(seq)}, "level_cm": 900}}'
        )
        return bool(banner.count())

    eventually(alert_shown, timeout_s=150, what="the alert's banner", interval_s=2)
    assert card.count() >= 1
    assert "Awas" in banner.inner_text() or "Siaga" in banner.inner_text()
    shot(browser, "alerts")
    card.first.locator("input[name=note]").fill("tim BPBD menuju lokasi")
    card.first.locator("button", has_text="Terima").click()
    page.wait_for_selector("text=tim BPBD menuju lokasi")  # type: ignore[attr-defined]
    assert "acknowledged" in card.first.inner_text()
    assert browser.hosts == {"127.0.0.1"}, browser.hosts
