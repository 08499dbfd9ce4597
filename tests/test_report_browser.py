"""The report in a real headless Chromium, opened from file:// with no network.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no port, no
extra package, no downloaded browser. Locally a missing Chromium skips these tests; under
CI=true it fails them (.ci/run installs Debian's `chromium`). Screenshots are written to
test-artifacts/ at the repository root."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canary.report import paths
from tests.test_report import EVIL, Case, build_case, build_odd_case

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_S = 30.0  # a guard against a wedged browser, not a wait for anything to happen
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--no-default-browser-check",
    "--disable-extensions",
    "--mute-audio",
    "--remote-debugging-pipe",
)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return None


class Chromium:
    """One headless Chromium with a fresh profile, spoken to over fds 3 (in) and 4 (out)."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="canary-chromium-")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=wire_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self._post("Browser.close")
            self.proc.wait(timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._out)
            os.close(self._in)
            shutil.rmtree(self.profile, ignore_errors=True)

    def _post(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"chromium sent nothing for {TIMEOUT_S} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":
                # Record it, then dismiss it so the page can finish loading.
                self._post("Page.handleJavaScriptDialog", {"accept": False}, message.get("sessionId"))
        return message

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        wanted = self._post(method, params, session)
        while True:
            message = self._receive()
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_event(self, method: str, session: str, after: int) -> dict[str, Any]:
        """The first `method` event of `session` among events[after:], reading more as needed."""
        index = after
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event["method"] == method and event.get("sessionId") == session:
                    return event
            self._receive()


class Tab:
    def __init__(self, browser: Chromium, width: int, height: int = 900) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=self.session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=self.session,
        )
        self.first_event = len(browser.events)

    def open(self, path: Path) -> None:
        mark = len(self.browser.events)
        self.browser.call("Page.navigate", {"url": path.as_uri()}, session=self.session)
        self.browser.wait_event("Page.loadEventFired", self.session, mark)

    def eval(self, expression: str) -> Any:
        result = self.browser.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def events(self, method: str) -> list[dict[str, Any]]:
        return [
            e["params"]
            for e in self.browser.events[self.first_event :]
            if e["method"] == method and e.get("sessionId") == self.session
        ]

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, browser log errors (CSP violations,
        failed loads) and dialogs."""
        out = [
            f"console.{p['type']}: {p.get('args')}"
            for p in self.events("Runtime.consoleAPICalled")
            if p["type"] in ("error", "warning", "assert")
        ]
        out += [
            f"exception: {p['exceptionDetails'].get('text')}" for p in self.events("Runtime.exceptionThrown")
        ]
        out += [
            f"log {p['entry']['level']}: {p['entry']['text']}"
            for p in self.events("Log.entryAdded")
            if p["entry"]["level"] in ("error", "warning")
        ]
        out += [f"dialog: {p.get('message')}" for p in self.events("Page.javascriptDialogOpening")]
        return out

    def requested(self) -> list[str]:
        return [p["request"]["url"] for p in self.events("Network.requestWillBeSent")]

    def screenshot(self, name: str) -> Path:
        size = self.browser.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.browser.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session=self.session,
        )["data"]
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / name
        target.write_bytes(base64.b64decode(data))
        return target


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required under CI=true (apt-get install chromium)")
        pytest.skip("Chromium is not installed")
    chromium = Chromium(executable)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Case:
    return build_case(tmp_path_factory.mktemp("report-browser"))


def assert_clean(tab: Tab) -> None:
    assert tab.problems() == []
    assert [u for u in tab.requested() if not u.startswith(("file://", "data:"))] == []


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_overview_renders_offline_without_errors(browser, case):
    tab = Tab(browser, 1280)
    tab.open(case.index)
    assert_clean(tab)
    rows = tab.eval("[...document.querySelectorAll('#overview tbody tr')].map(r => r.dataset.model)")
    assert rows == ["alpha", "beta", "team/opus:v1"]
    # inline CSS applied (not blocked by the CSP): the firing badge is vermillion
    colour = tab.eval("getComputedStyle(document.querySelector('.badge.firing')).backgroundColor")
    assert colour == "rgb(213, 94, 0)"
    sparks = tab.eval(
        "[...document.querySelectorAll('svg.spark')].map(s => "
        "[s.getBoundingClientRect().width, s.dataset.points])"
    )
    assert sparks[0] == [120, str(case.rate_points)]  # alpha ran on the same days on every canary
    width = tab.eval("document.documentElement.scrollWidth")
    assert width <= 1280  # the overview fits a 1280 px screen without sideways scrolling
    assert is_png(tab.screenshot("report-overview-1280.png"))

    phone = Tab(browser, 390, 844)
    phone.open(case.index)
    assert_clean(phone)
    # on a phone the page keeps its width; only the table scrolls sideways
    assert phone.eval("document.documentElement.scrollWidth") <= 390
    assert phone.eval(
        "(() => { const s = document.querySelector('.scroll'); return s.scrollWidth > s.clientWidth })()"
    )
    assert is_png(phone.screenshot("report-overview-390.png"))


def test_pass_rate_chart_draws_one_point_per_day_with_data(browser, case):
    tab = Tab(browser, 1280)
    tab.open(case.out / paths.canary_page("alpha", "capital"))
    assert_clean(tab)
    chart = "document.querySelector('svg[data-chart=rate]')"
    box = tab.eval(f"(() => {{ const b = {chart}.getBoundingClientRect(); return [b.width, b.height] }})()")
    assert box[0] > 1000 and box[1] > 300
    assert tab.eval(f"{chart}.querySelectorAll('circle.pt.s-rate').length") == case.rate_points
    d = tab.eval(f"{chart}.querySelector('path.line.s-rate').getAttribute('d')")
    assert d.count("M") + d.count("L") == case.rate_points
    # every point lies inside the plot area
    inside = tab.eval(f"""(() => {{
        const svg = {chart}, plot = svg.querySelector('line.axis').getBBox();
        return [...svg.querySelectorAll('circle.pt')].every(c => {{
            const x = c.cx.baseVal.value; return x >= plot.x && x <= plot.x + plot.width; }}); }})()""")
    assert inside
    assert tab.eval(f"{chart}.querySelectorAll('rect.span.no_data').length") == 1
    assert tab.eval(f"{chart}.querySelectorAll('polygon.band').length") >= 1
    assert is_png(tab.screenshot("report-canary-1280.png"))
    phone = Tab(browser, 390, 844)
    phone.open(case.out / paths.canary_page("alpha", "capital"))
    assert_clean(phone)
    assert phone.eval("document.documentElement.scrollWidth") <= 390  # charts shrink to fit
    assert is_png(phone.screenshot("report-canary-390.png"))


def test_hostile_model_output_is_inert(browser, case):
    tab = Tab(browser, 1280)
    for page in (
        paths.canary_page("alpha", "capital"),
        paths.canary_page("alpha", "steps"),
        paths.canary_page("alpha", "weather"),
        paths.INDEX,
        paths.ALERTS,
    ):
        tab.open(case.out / page)
        assert tab.eval("document.querySelectorAll('script, img, iframe, object, embed').length") == 0
        on_attrs = tab.eval(
            "[...document.querySelectorAll('*')].flatMap(e => "
            "[...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'))"
        )
        assert on_attrs == []
    assert_clean(tab)  # no dialog opened, nothing logged, nothing fetched
    tab.open(case.out / paths.canary_page("alpha", "capital"))
    replies = tab.eval("[...document.querySelectorAll('.msg.assistant.failed pre')].map(p => p.textContent)")
    assert EVIL in replies  # shown as the text it is


def test_bidi_controls_render_as_markers(browser, tmp_path):
    """What a reader sees: the reply's text holds the markers and no bidi control, so the page
    cannot show "exe.png" for a reply that says "gnp.exe"."""
    out, _ = build_odd_case(tmp_path)
    tab = Tab(browser, 1280)
    tab.open(out / paths.canary_page("alpha", "capital"))
    assert_clean(tab)
    texts = tab.eval("[...document.querySelectorAll('.transcript')].map(a => a.textContent)")
    joined = "".join(texts)
    assert "gnp.exe⟨U+2069⟩" in joined and "served by alpha⟨U+202E⟩" in joined
    assert not any(ch in joined for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\x00")
    tab.open(out / paths.canary_page("alpha", "steps"))
    assert_clean(tab)
    assert "bl⟨U+0000⟩ue" in tab.eval("document.querySelector('.msg.assistant pre').textContent")


def test_the_dialog_check_can_fail(browser, tmp_path):
    """Control: the same harness does see a script that runs, so the checks above mean something."""
    control = tmp_path / "control.html"
    control.write_text("<!doctype html><title>x</title><script>alert('pwned')</script>", encoding="utf-8")
    tab = Tab(browser, 800)
    tab.open(control)
    assert tab.problems() == ["dialog: pwned"]
