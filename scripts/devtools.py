"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended
by NUL on fds 3 and 4), with no library: open a page, wait in real time until it has drawn, read it, take a
screenshot. Used by tests/e2e/test_dashboard.py and scripts/bench_timeline.py.

By default every host name but 127.0.0.1 fails to resolve, as on a machine without internet, and every
request the browser makes is written to a net log.
"""

import base64
import json
import os
import subprocess
import time
from pathlib import Path

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


class Browser:
    def __init__(self, chromium: str, profile: Path, width: int = 1300, height: int = 1000,
                 net_log: Path | None = None):
        to_chrome, self.write_fd = os.pipe()
        self.read_fd, from_chrome = os.pipe()

        def pipes():
            for fd, number in ((to_chrome, 3), (from_chrome, 4)):
                if fd != number:
                    os.dup2(fd, number)
                os.set_inheritable(number, True)  # dup2 onto itself would keep close-on-exec

        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe",
                OFFLINE, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        args += [f"--log-net-log={net_log}"] if net_log else []
        self.process = subprocess.Popen(args + ["about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        close_fds=False, preexec_fn=pipes)  # closing would drop the dup'ed 3 and 4
        os.close(to_chrome)
        os.close(from_chrome)
        self.next_id, self.buffer = 0, b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> str:
        """A new page at `url`; returns its session."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.navigate", session, url=url)
        return session

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 60.0):
        """Poll `expression` until it is truthy (real time); returns its value, or raises TimeoutError. The value
        comes back as JSON, so test a node's presence with `!!` (a DOM node itself reads as nothing)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(session, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout:.0f} s: {expression}")
            time.sleep(0.2)

    def screenshot(self, session: str, path: Path, height: int | None = None):
        """A PNG of the page, `height` pixels tall (default: the window)."""
        params = {"format": "png"}
        if height:
            width = self.evaluate(session, "document.documentElement.clientWidth")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session, **params)["data"]))

    def close(self):
        """Quit (which also completes the net log)."""
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.write_fd)
        os.close(self.read_fd)


def page_requests(net_log: Path) -> list[str]:
    """URLs that pages asked for (a document's origin as initiator; the browser's own calls have none)."""
    log = json.loads(Path(net_log).read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"] if e["type"] == start
            and e.get("params", {}).get("initiator", "").startswith("http")]
