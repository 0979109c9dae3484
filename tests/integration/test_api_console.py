"""`switchboard api` over a real pipeline run: a signed GET of a message, then the console in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import FloatRect, Page, async_playwright
from yarl import URL

from projections.api import signed_get_headers
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import message_events, request, send_commands, terminal_count, write_pipeline
from tests.integration.png_pixels import Image, read_png

# Debian's Chromium, never a browser build of Playwright's own; bin/test installs it when it is missing.
CHROMIUM = Path("/usr/bin/chromium")
GONE = "+4917099800031"  # WhatsApp cannot deliver to it: the message falls back to SMS
SECRETS = {"SB_TEST_API_ACME": "acme-read-secret", "SB_TEST_API_GLOBEX": "globex-read-secret"}


@dataclass
class RunningApi:
    base: str
    console_url: str
    process: asyncio.subprocess.Process

    async def get(self, path: str, client: str = "reader-acme") -> tuple[int, Any]:
        secret = SECRETS["SB_TEST_API_ACME" if client == "reader-acme" else "SB_TEST_API_GLOBEX"]
        async with aiohttp.ClientSession() as session, session.get(
                URL(self.base + path, encoded=True), headers=signed_get_headers(client, secret, path)) as answer:
            return answer.status, await answer.json()


@asynccontextmanager
async def switchboard_api(tmp_path: Path, bootstrap: str, prefix: str) -> AsyncIterator[RunningApi]:
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"reader-acme": {"tenant": "acme", "secret_env": "SB_TEST_API_ACME"},
                                   "reader-globex": {"tenant": "globex", "secret_env": "SB_TEST_API_GLOBEX"}}))
    log = (tmp_path / "api.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "api", "--bootstrap", bootstrap, "--topic-prefix", prefix,
        "--root", str(tmp_path / "projections"), "--port", "0", "--clients-file", str(clients),
        "--console-tenant", "acme", "--interval", "0.5", stdout=asyncio.subprocess.PIPE, stderr=log,
        env={**os.environ, **SECRETS})
    try:
        base, console = await _announced(process)
        yield RunningApi(base, console, process)
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
        log.close()
    assert process.returncode == 0, (tmp_path / "api.log").read_text()[-3000:]


async def _announced(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """The API's base URL and the console URL, from the two lines it prints once it serves."""
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    second = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    base = re.search(r"(http://[\d.]+:\d+)/v1/", first)
    console = re.search(r"(http://\S+/console/#token=\S+)", second)
    assert base is not None, first
    assert console is not None, second
    return base.group(1), console.group(1)


async def _until(api: RunningApi, path: str, ok: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await api.get(path)
        if status == 200 and ok(body):
            return body
        assert time.monotonic() < deadline, f"{path}: {status} {body}"
        await asyncio.sleep(0.3)


async def _ready(api: RunningApi, timeout: float = 60.0) -> None:
    """/readyz turns 200: a row can show before the first round of both projections has completed."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(api.base + "/readyz") as ready:
                if ready.status == 200:
                    return
                assert time.monotonic() < deadline, await ready.text()
            await asyncio.sleep(0.3)


@pytest.fixture
def chromium() -> Path:
    """Never skipped: a machine without Chromium fails here, with what to do."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: bin/test installs Debian's chromium (apt-get install chromium)"
    return CHROMIUM


async def test_the_api_serves_a_pipeline_run_and_the_console_shows_a_timeline(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline,
        chromium: Path) -> None:
    await start_pipeline(write_pipeline(tmp_path, settings=f'fail_addresses = "{GONE}"'))
    await send_commands(kafka_bootstrap, unique_prefix,
                        [request(f"reader-{i}", f"reader-{i}", phone=GONE if i == 0 else None) for i in range(4)])
    events = await message_events(kafka_bootstrap, unique_prefix,
                                  lambda got: sum(map(terminal_count, got.values())) >= 4)
    fallen = next(mid for mid, got in events.items() if any(t == "MessageFallbackTriggered" for t, _ in got))

    async with switchboard_api(tmp_path, kafka_bootstrap, unique_prefix) as api:
        row = await _until(api, f"/v1/messages/{fallen}", lambda body: body["status"] == "accepted")
        assert (row["channels"], row["attempts"]) == (["whatsapp", "sms"], 2)
        assert row["errors"][0]["code"] == "inprocess.undeliverable"
        assert await api.get(f"/v1/messages/{fallen}", client="reader-globex") == (
            404, {"error": {"code": "not_found", "message": f"no message {fallen}", "details": []}})
        await _ready(api)
        await _console(chromium, api.console_url, fallen, tmp_path / "console.png")


async def _console(chromium: Path, url: str, message_id: str, screenshot: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            await page.goto(url)
            await page.wait_for_selector("body[data-ready=true]")
            assert "#token" not in page.url  # the one-time token leaves the address bar
            await page.fill("#query", message_id)
            await page.click("#find button")
            await page.wait_for_selector("#timeline li[data-status=accepted]")
            statuses = await page.eval_on_selector_all("#timeline li", "items => items.map(i => i.dataset.status)")
            await page.wait_for_selector("#funnel rect.bar")
            await _check_screenshot(page, await page.screenshot(path=str(screenshot), full_page=True))
            assert problems == [], problems
        finally:
            await browser.close()
    assert statuses[0] == "requested"
    assert statuses.index("routed") < statuses.index("failed") < statuses.index("falling_back") \
        < statuses.index("accepted")
    assert "error inprocess.undeliverable" in statuses


async def _check_screenshot(page: Page, png: bytes) -> None:
    """A real picture: the page's size, and the timeline and funnel drawn (many non-white pixels, many colours)."""
    image = read_png(png)
    assert image.width == 1280
    assert image.height >= 900
    for selector in ("#timeline", "#funnel"):
        box = await page.locator(selector).bounding_box()
        assert box is not None, selector
        _not_blank(image, selector, box)


def _not_blank(image: Image, what: str, box: FloatRect) -> None:
    pixels = image.region(int(box["x"]), int(box["y"]), int(box["width"]), int(box["height"]))
    inked = sum(1 for red, green, blue in pixels if min(red, green, blue) < 200)
    assert len(pixels) > 1000, f"{what}: too small ({box})"
    assert inked / len(pixels) > 0.01, f"{what} looks blank: {inked} of {len(pixels)} pixels drawn"
    assert len(set(pixels)) > 8, f"{what} has hardly any colours"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser and the clients talk to loopback only."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
