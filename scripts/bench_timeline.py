"""How long the step timeline takes to draw a step of many spans, in headless Chromium, in real time.

    python scripts/bench_timeline.py [--spans=100000]

Writes a synthetic step (host ops nested two deep on one thread, kernels on one stream) into a temporary log
directory, serves it with TensorBoard on 127.0.0.1, opens the MFU tab's page in Chromium (driven over the
DevTools protocol on a pipe), then zooms in step by step and reads the time each redraw took and how many
rectangles it drew. Prints the median and the worst redraw per zoom level.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "h200_gpt2_small_compiled.pt.trace.json.gz"
CATEGORIES = ["matmul", "other_compute", "memory", "communication", "data_loading", "host_overhead", "idle"]


def synthetic_step(spans: int) -> dict:
    """Half the spans on a host thread (a 4 µs op holding a 2 µs one, every 5 µs), half as kernels on a stream."""
    pairs, kernels = spans // 4, spans // 2
    duration = 5.0 * pairs
    host = {"lane": [0] * (2 * pairs), "depth": [0, 1] * pairs,
            "start": [t for i in range(pairs) for t in (5.0 * i, 5.0 * i + 1)], "dur": [4.0, 2.0] * pairs,
            "name": [k for i in range(pairs) for k in (i % 50, 50 + i % 10)],
            "category": [k for i in range(pairs) for k in (5, i % 2)], "flops": [0, 1e6] * pairs}
    step = duration / kernels
    device = {"lane": [1] * kernels, "depth": [0] * kernels, "start": [i * step for i in range(kernels)],
              "dur": [0.8 * step] * kernels, "name": [60 + i % 20 for i in range(kernels)],
              "category": [i % 4 for i in range(kernels)], "flops": [0] * kernels}
    return {"schema": "mfu-timeline/1", "step": 1, "duration_us": duration,
            "lanes": ["host thread 1", "stream 7 (device 0)"], "categories": CATEGORIES,
            "names": [f"op_{i}" for i in range(80)], "shapes": {},
            "spans": {key: host[key] + device[key] for key in host}}


class DevTools:
    """The DevTools protocol over --remote-debugging-pipe: JSON messages ended by NUL, fds 3 (in) and 4 (out)."""

    def __init__(self, chromium: str, profile: str):
        to_chrome, self.write_fd = os.pipe()
        self.read_fd, from_chrome = os.pipe()

        def pipes():
            for fd, number in ((to_chrome, 3), (from_chrome, 4)):
                if fd != number:
                    os.dup2(fd, number)
                os.set_inheritable(number, True)  # dup2 onto itself would keep close-on-exec

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1300,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=pipes)  # closing would drop 3 and 4: they are dup'ed after the kept fds
        self.next_id, self.buffer = 0, b""

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                self.buffer += os.read(self.read_fd, 1 << 16)
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)


# zoom by the wheel at the middle of the plot, `steps` times, each time waiting for the redraw it asks for
ZOOM = """(async () => {
  const canvas = document.querySelector("canvas.timeline"), out = [];
  const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  for (let level = 0; level < %d; level++) {
    for (let repeat = 0; repeat < %d; repeat++) {
      canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: repeat %% 2 ? -100 : 100, clientX: 700, clientY: 40,
                                                    bubbles: true, cancelable: true}));
      await frame();
      out.push([level, Number(canvas.dataset.drawMs), Number(canvas.dataset.drawn)]);
    }
    for (let k = 0; k < 6; k++) {
      canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: -100, clientX: 700, clientY: 40, bubbles: true, cancelable: true}));
      await frame();
    }
  }
  return out;
})()"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--levels", type=int, default=4, help="zoom levels, each 1.25^6 = 3.8x deeper")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("error: Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "logs" / "big"
        subprocess.run([sys.executable, "-m", "profiler", "analyze", str(FIXTURE), f"--out={run}", "--quiet"],
                       check=True, cwd=ROOT)  # a report to show beside the step, whose timeline is replaced
        (run / "report.timeline.json").write_text(json.dumps(synthetic_step(args.spans)))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", f"--logdir={run.parent}",
                                   "--host=127.0.0.1", f"--port={port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        browser = None
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/mfu/runs", timeout=5)
                    break
                except OSError:
                    time.sleep(0.5)
            browser = DevTools(chromium, str(Path(tmp) / "profile"))
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            browser.call("Page.navigate", session, url=f"http://127.0.0.1:{port}/data/plugin_entry.html?name=mfu")
            for _ in range(600):
                if browser.evaluate(session, "document.querySelector('canvas.timeline')?.dataset.drawn ?? null"):
                    break
                time.sleep(0.1)
            first = browser.evaluate(session, "Number(document.querySelector('canvas.timeline').dataset.drawMs)")
            rows = browser.evaluate(session, ZOOM % (args.levels, args.repeats))
        finally:
            if browser:
                browser.close()
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.spans:,} spans; first draw of the whole step {first:.1f} ms")
    print("zoom level | redraw median ms | worst ms | rectangles drawn")
    for level in range(args.levels):
        times = [ms for lv, ms, _ in rows if lv == level]
        drawn = [n for lv, _, n in rows if lv == level]
        print(f"{level:10d} | {statistics.median(times):16.1f} | {max(times):8.1f} | {statistics.median(drawn):,.0f}")


if __name__ == "__main__":
    main()
