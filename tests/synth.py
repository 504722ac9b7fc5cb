"""Small hand-written Kineto traces, for checks whose right answer is known exactly."""

import json
from pathlib import Path

PID, TID, STREAM = 100, 100, 7


def op(name, ts, dur, tid=TID, cat="cpu_op", **args):
    return {"ph": "X", "cat": cat, "name": name, "pid": PID, "tid": tid, "ts": ts, "dur": dur, "args": args}


def launch(ts, dur, correlation, name="cudaLaunchKernel", cat="cuda_runtime"):
    return {"ph": "X", "cat": cat, "name": name, "pid": PID, "tid": TID, "ts": ts, "dur": dur,
            "args": {"correlation": correlation}}


def python(name, ts, dur, tid=TID):
    """A Python frame as the python tracer (with_stack) records it."""
    return op(name, ts, dur, tid=tid, cat="python_function")


def kernel(name, ts, dur, correlation, cat="kernel", **args):
    return {"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": STREAM, "ts": ts, "dur": dur,
            "args": {"correlation": correlation, "device": 0, "stream": STREAM, **args}}


def step(n, ts, dur):
    return op(f"ProfilerStep#{n}", ts, dur, cat="user_annotation")


def write(path: Path, events, device="NVIDIA H100 80GB HBM3", **top) -> Path:
    trace = {"schemaVersion": 1, "traceEvents": events, **top}
    if device:
        trace["deviceProperties"] = [{"id": 0, "name": device}]
    path.write_text(json.dumps(trace))
    return path
