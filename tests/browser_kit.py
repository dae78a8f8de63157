"""Headless Chromium from Debian's packages, driven over the DevTools protocol (aiohttp).

`make chromium` installs it (a dependency of the pytest targets); without it the browser tests
skip, as the nginx ones do. The browser is kept off the network: a proxy on a closed port
for every scheme, loopback included (`<-loopback>`), no background networking, a fresh
profile. Every request the page makes is recorded from the Network domain, every console
error and uncaught exception from Runtime and Log.

Also a tool: `python tests/browser_kit.py report.html shot.png [HEIGHT]` writes a screenshot
of the page's top HEIGHT pixels (default: all of it), 1400 wide; docs/observability.md says how
docs/img/report.png is made.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Chromium", "Loaded", "chromium_binary", "launch"]

FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--mute-audio",
    "--hide-scrollbars",
    # Every connection goes to a closed port: a request that slipped out fails, and is recorded.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1400,1000",
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@dataclass
class Loaded:
    """What one page load showed: requests, errors, and the values of the probes asked for."""

    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class Chromium:
    """A running headless Chromium; `load()` opens a page in a new tab and closes it after."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, profile: Path) -> None:
        self.proc, self.port, self.profile = proc, port, profile

    def load(
        self,
        path: Path,
        probes: Mapping[str, str],
        *,
        screenshot: int = 0,
        timeout: float = 30.0,
    ) -> Loaded:
        """Open `path` in a new tab and evaluate the probes; `screenshot`: also a PNG of the
        page's top that many pixels (0: none)."""
        url = path.resolve().as_uri()
        return asyncio.run(asyncio.wait_for(self._load(url, probes, screenshot), timeout))

    async def _load(self, url: str, probes: Mapping[str, str], screenshot: int) -> Loaded:
        base = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{base}/json/new?about:blank") as resp:
                target = await resp.json()
            try:
                async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    return await _drive(ws, url, probes, screenshot)
            finally:
                async with http.get(f"{base}/json/close/{target['id']}") as resp:
                    await resp.read()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


async def _drive(
    ws: aiohttp.ClientWebSocketResponse, url: str, probes: Mapping[str, str], screenshot: int
) -> Loaded:
    loaded = Loaded(url)
    ids = itertools.count(1)
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
    load_fired = asyncio.Event()

    def on_event(method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            loaded.requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            loaded.requests.append(params["url"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            loaded.errors.append(json.dumps(params["args"]))
        elif method == "Runtime.exceptionThrown":
            loaded.errors.append(json.dumps(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            loaded.errors.append(params["entry"]["text"])
        elif method == "Page.loadEventFired":
            load_fired.set()

    async def reader() -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if "id" in data:
                pending.pop(data["id"]).set_result(data)
            else:
                on_event(data["method"], data.get("params", {}))

    async def send(method: str, **params: Any) -> dict[str, Any]:
        n = next(ids)
        pending[n] = asyncio.get_running_loop().create_future()
        await ws.send_json({"id": n, "method": method, "params": params})
        reply = await pending[n]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    task = asyncio.create_task(reader())
    try:
        for domain in ("Network", "Runtime", "Log", "Page"):
            await send(f"{domain}.enable")
        await send("Page.navigate", url=url)
        await load_fired.wait()
        for name, expression in probes.items():
            reply = await send("Runtime.evaluate", expression=expression, returnByValue=True)
            if "exceptionDetails" in reply:
                raise RuntimeError(f"probe {name}: {reply['exceptionDetails']}")
            loaded.values[name] = reply["result"].get("value")
        if screenshot:
            height = await send("Runtime.evaluate", expression="document.body.scrollHeight")
            h = min(screenshot, int(height["result"]["value"]))
            clip = {"x": 0, "y": 0, "width": 1400, "height": h, "scale": 1}
            shot = await send(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
            )
            loaded.screenshot = base64.b64decode(shot["data"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return loaded


def launch(timeout: float = 30) -> Chromium:
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (make chromium)")
    profile = Path(tempfile.mkdtemp(prefix="wbsrun-chromium-"))
    flags = [*FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(
        [binary, *flags, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        lines = port_file.read_text().split() if port_file.exists() else []
        if lines:
            return Chromium(proc, int(lines[0]), profile)
        time.sleep(0.05)
    Chromium(proc, 0, profile).close()
    raise RuntimeError(f"chromium did not open its DevTools port within {timeout}s")


@contextlib.contextmanager
def running() -> Iterator[Chromium]:
    browser = launch()
    try:
        yield browser
    finally:
        browser.close()


if __name__ == "__main__":
    page, out = Path(sys.argv[1]), Path(sys.argv[2])
    height = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    with running() as browser:
        shot = browser.load(page, {}, screenshot=height)
    out.write_bytes(shot.screenshot)
    print(f"{out}: {len(shot.screenshot)} bytes; requests {shot.requests}; errors {shot.errors}")
