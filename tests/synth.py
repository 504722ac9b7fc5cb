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


def no_shapes_gpu_window():
    """One window of 1,000 us, no ProfilerStep and no shapes: a convolution whose 600 us kernel is fp32 SIMT
    (cuDNN's wgrad engine), an elementwise kernel of 100 us, 300 us of host dispatch with the device idle."""
    return [
        op("aten::cudnn_convolution", 0, 20), launch(5, 10, 1),
        kernel("void cudnn::cnn::wgrad_alg1_engine<float, float, 512, 6, 5, 3, 3, 3, false, false>(int)", 20,
               600, 1),
        op("aten::add_", 610, 10), launch(612, 5, 2),
        kernel("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float> >(int)", 620,
               100, 2),
        op("aten::relu", 720, 280),  # host busy 280 us, nothing on the device
    ]


TIMELINE_MM = {"Input Dims": [[64, 128], [128, 256]], "Input type": ["float", "float"]}


def gpu_trace(tmp_path):
    """Three steps of 100, 300 and 200 µs; the median one (step 3, at 400 µs) runs a matmul and a copy."""
    return write(tmp_path / "t.json", [
        step(1, 0, 100), op("aten::relu", 10, 20),
        step(2, 100, 300), op("aten::relu", 110, 20),
        step(3, 400, 200),
        op("aten::mm", 410, 50, **TIMELINE_MM), launch(420, 5, 1),
        op("aten::copy_", 470, 20), launch(475, 3, 2),
        kernel("sm90_xmma_gemm_f32f32", 430, 50, 1),
        kernel("Memcpy HtoD (Pageable -> Device)", 500, 20, 2, cat="gpu_memcpy"),
    ])


def memory(ts, nbytes, allocated=None, reserved=None, device_type=1, device_id=0):
    """An allocator event as profile_memory=True records it; without `allocated` as the 2021 traces did (Bytes
    alone)."""
    args = {"Device Type": device_type, "Device Id": device_id, "Bytes": nbytes}
    if allocated is not None:
        args.update({"Total Allocated": allocated, "Total Reserved": reserved or 0})
    return {"ph": "i", "s": "t", "cat": "cpu_instant_event", "name": "[memory]", "pid": PID, "tid": TID, "ts": ts,
            "args": args}
