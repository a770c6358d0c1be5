"""Headless Chromium driven over the DevTools protocol: open a page as a reader does, ask it questions.

The site tests use it to see what a reader sees after every script ran (MathJax typeset, images
decoded), to read back the console's errors, and to take screenshots of one element of a long page.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket


class Browser:
    """One headless Chromium with one tab; ``open(url)`` loads a page and waits for MathJax."""

    def __init__(self, width: int = 1280, height: int = 1400):
        names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        binary = next((shutil.which(name) for name in names if shutil.which(name)), None)
        if binary is None:
            raise RuntimeError(
                f"headless Chromium is needed, as one of {names} (Debian: apt-get install chromium)"
            )
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile.name}",
        ]
        self._process = subprocess.Popen(
            [binary, *flags, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = self._port(Path(self._profile.name) / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            # no Origin header: Chromium accepts DevTools connections from local programs without one
            self._ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
            )
        except BaseException:
            self._stop()
            raise
        self._id = 0
        self.errors: list[str] = []  # console errors and uncaught exceptions of the page open now
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _port(self, active_port: Path) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if active_port.is_file() and active_port.read_text().strip():
                return int(active_port.read_text().split()[0])
            if self._process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self._process.returncode} at start")
            time.sleep(0.1)
        raise RuntimeError("Chromium did not open its DevTools port within 30 s")

    def send(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result; events on the way are recorded."""
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._event(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
        elif method == "Page.loadEventFired":
            self._loaded = True

    def open(self, url: str) -> None:
        """Load ``url``, wait for its load event, its images and MathJax's typesetting."""
        self.errors, self._loaded = [], False
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not self._loaded:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading in 60 s")
            self._event(json.loads(self._ws.recv()))
        self.evaluate(
            "Promise.all([window.MathJax && MathJax.startup ? MathJax.startup.promise : null,"
            " ...[...document.images].map(i => i.decode().catch(() => null))])"
        )

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path: Path, selector: str, margin: int = 16, max_height: int = 6000) -> None:
        """A PNG of the first element matching ``selector``, with a margin around it; of its top
        ``max_height`` pixels where it is taller."""
        found = f"document.querySelector({json.dumps(selector)})"
        if not self.evaluate(f"{found} !== null"):
            raise LookupError(f"no element matches {selector!r}")
        # a viewport as tall as the element, scrolled to it: laid out and painted as a reader sees it
        width, height = self.evaluate(
            f"[innerWidth, Math.max(innerHeight,"
            f" Math.min({found}.offsetHeight, {max_height}) + {3 * margin})]"
        )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=min(height, 16_000),
            deviceScaleFactor=1,
            mobile=False,
        )
        try:
            # let the page lay out, decode its images and paint at that size before the capture
            self.evaluate(
                "Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
                ".then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))"
            )
            self.evaluate(f"{found}.scrollIntoView({{block: 'start'}}); scrollBy(0, -{margin})")
            box = self.evaluate(
                f"(() => {{ const r = {found}.getBoundingClientRect();"
                " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"
            )
            clip = {
                "x": max(box["x"] - margin, 0),
                "y": max(box["y"] - margin, 0),
                "width": box["width"] + 2 * margin,
                "height": min(box["height"], max_height) + 2 * margin,
                "scale": 1,
            }
            shot = self.send("Page.captureScreenshot", format="png", clip=clip)
        finally:
            self.send("Emulation.clearDeviceMetricsOverride")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        # Chromium's helper processes share its process group: end them all before removing the profile
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._profile.cleanup()
