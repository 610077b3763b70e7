"""The HTML report as a person sees it: opened in headless Chromium, which reports no errors.

Drives Debian's chromium over the Chrome DevTools protocol (a websocket; the
client is ``websocket-client``, installed with the kubernetes package). The
page is loaded from ``file://`` with the network unused; we collect console
messages, uncaught exceptions and log entries, read the tables back from the
rendered DOM, and keep a full-page screenshot under ``reports/out/screenshots/``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness import baselines
from harness.report.tables import pct
from harness.run_end import reanalyse
from tests.run_fixtures import BACKENDS, RunSpec, end_run, write_cache, write_run
from tests.test_report import HOSTILE_LOG, HOSTILE_NAME, HOSTILE_REASON

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "reports" / "out" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*"]

websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive the browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                                                     "/usr/bin/chromium (apt-get install -y chromium)."),
]


class Page:
    """One browser tab, driven over the DevTools protocol; events are kept for inspection."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and error log entries."""
        found = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif e.get("method") == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif e.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                found.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url')})")
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium with a new empty profile; yields a function that opens a page."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pages: list[Page] = []
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit status {process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])

        def open_page(path: Path, width: int = 1400) -> Page:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
            with urllib.request.urlopen(request, timeout=30) as response:
                target = json.loads(response.read())
            page = Page(target["webSocketDebuggerUrl"])
            pages.append(page)
            for domain in ("Runtime", "Log", "Page"):
                page.send(f"{domain}.enable")
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=1000,
                      deviceScaleFactor=1, mobile=False)
            page.send("Page.navigate", url=path.resolve().as_uri())
            page.wait_for("Page.loadEventFired")
            return page

        yield open_page
    finally:
        for page in pages:
            page.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def screenshot(page: Page, name: str) -> Path:
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    page.send("Emulation.setDeviceMetricsOverride", width=1400, height=min(height, 16000),
              deviceScaleFactor=1, mobile=False)
    shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    import base64

    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot of the report: {path}")
    return path


TABLES_JS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('table[id]')].map(
    t => [t.id, [...t.rows].map(r => [...r.cells].map(c => c.innerText.replace(/\\s+/g, ' ').trim()))])))"""


def test_the_report_renders_without_errors_and_shows_the_runs_numbers(browser, tmp_path: Path) -> None:
    spec = RunSpec(failed={"jax": "Traceback (most recent call last):\nMemoryError"})
    folder = write_run(tmp_path, spec)
    write_cache(tmp_path, spec)
    earlier = reanalyse(folder)
    baseline_path = tmp_path / "smoke.json"
    baselines.record(baseline_path, "smoke", earlier)
    end_run(dataclasses.replace(earlier, run_id="yesterday"), folder)
    analysis = reanalyse(folder).to_json()
    report = end_run(reanalyse(folder), folder, baseline=baseline_path)[0]

    page = browser(report)
    assert page.problems() == []
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.evaluate("document.images.length") >= 5 + len(analysis["table"]["indices"])
    tables = json.loads(page.evaluate(TABLES_JS))

    results = {row[0].rstrip(" ★"): row for row in tables["results-table"][1:]}
    assert set(results) == set(BACKENDS)
    for name, member in analysis["members"].items():
        assert pct(member["train_accuracy"]) in results[name]
        if member["state"] == "ok":
            assert pct(member["test"]["accuracy"]) in results[name]
            assert f"{member['test']['ece']:.3f}" in results[name]
    assert results["jax"][1] == "failed"
    variants = {row[0].split(" ")[0].removesuffix("recommended").removesuffix("checked"): row
                for row in tables["variants-table"][1:]}
    for name, variant in analysis["variants"].items():
        assert pct(variant["test"]["accuracy"]) in variants[name]
        assert f"{variant['test']['nll']:.3f}" in variants[name]
    assert tables["left-out-table"][1][:2] == ["jax", "failed"]
    assert [row[0] for row in tables["history-table"][1:]] == ["synthetic1", "yesterday"]
    assert len(tables["per-image-table"]) > 10
    assert "MemoryError" in page.evaluate("document.body.innerText")
    screenshot(page, "report")


def test_hostile_names_and_logs_show_as_text_in_the_browser(browser, tmp_path: Path) -> None:
    spec = RunSpec(backends=(*BACKENDS, HOSTILE_NAME), failed={"jax": HOSTILE_LOG},
                   skipped={HOSTILE_NAME: HOSTILE_REASON})
    folder = write_run(tmp_path, spec)
    report = end_run(reanalyse(folder), folder)[0]
    page = browser(report)
    assert page.problems() == []
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.querySelectorAll('b, img[src=x]').length") == 0
    text = page.evaluate("document.body.innerText")
    assert HOSTILE_NAME in text and HOSTILE_REASON in text and "</pre><b>bold</b>" in text
    screenshot(page, "report-hostile")


def test_the_error_collector_would_see_errors(browser, tmp_path: Path) -> None:
    """Guards the guard: a page with a console error and a missing image is reported."""
    page_path = tmp_path / "broken.html"
    page_path.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                         '<script>console.error("deliberate"); undefined_call();</script></body></html>')
    problems = browser(page_path).problems()
    assert any("deliberate" in p for p in problems)
    assert any("exception" in p for p in problems)
    assert any("missing.png" in p for p in problems)
