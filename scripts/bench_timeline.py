"""How long the step timeline takes to draw a step of many spans, in headless Chromium, in real time.

    python scripts/bench_timeline.py [--spans=100000]

Writes a synthetic step (host ops nested two deep on one thread, kernels on one stream) into a temporary log
directory, serves it with TensorBoard on 127.0.0.1, opens the MFU tab's page in Chromium (driven over the
DevTools protocol on a pipe, scripts/devtools.py), then zooms in step by step and reads the time each redraw
took and how many rectangles it drew. Prints the median and the worst redraw per zoom level.
"""

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from devtools import Browser

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
      canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: -100, clientX: 700, clientY: 40, bubbles: true,
                                                    cancelable: true}));
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
            browser = Browser(chromium, Path(tmp) / "profile")
            session = browser.open(f"http://127.0.0.1:{port}/data/plugin_entry.html?name=mfu")
            browser.wait_for(session, "document.querySelector('canvas.timeline')?.dataset.drawn", timeout=120)
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
