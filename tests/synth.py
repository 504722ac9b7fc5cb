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


STEP_US = 10_000
MM = "sm90_xmma_gemm_f32f32_tn"
ADD = "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float> >(int)"
MUL = "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<float, MulFunctor> >(int)"
GELU = "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(float)>(int)"


def gpu_steps(path, steps=10, add_extra_us=0, gelu=False, m=8, device="NVIDIA H100 80GB HBM3"):
    """`steps` steps of 10 ms (longer by add_extra_us, and 0.6 ms with gelu): an aten::mm [m,1024]x[1024,4096]
    of 4 ms, an aten::add_ of 1 ms (+ add_extra_us), optionally an aten::gelu of 0.5 ms; the mm and add kernels
    jittered by a few µs, deterministically, so that the steps differ as real ones do."""
    events, t0 = [], 0
    for i in range(steps):
        jitter = (i * 37) % 7 * 10
        length = STEP_US + add_extra_us + 600 * gelu
        mm = {"Input Dims": [[m, 1024], [1024, 4096]], "Input type": ["float", "float"]}
        add = {"Input Dims": [[m, 4096], [m, 4096], []], "Input type": ["float", "float", "Scalar"]}
        events += [step(i + 1, t0, length - 100),
                   op("aten::mm", t0 + 10, 30, **mm), launch(t0 + 20, 5, 3 * i + 1),
                   kernel(MM, t0 + 50, 4000 + jitter, 3 * i + 1),
                   op("aten::add_", t0 + 60, 30, **add), launch(t0 + 70, 5, 3 * i + 2),
                   kernel(ADD, t0 + 4100, 1000 + add_extra_us - jitter, 3 * i + 2)]
        if gelu:
            events += [op("aten::gelu", t0 + 100, 30, **{"Input Dims": [[m, 4096]], "Input type": ["float"]}),
                       launch(t0 + 110, 5, 3 * i + 3), kernel(GELU, t0 + 5200 + add_extra_us, 500, 3 * i + 3)]
        for k in range(5):  # tiny ops: what a near-empty op costs (signals.fixed_cost), so the add's time is work
            c = 1000 + 10 * i + k
            events += [op("aten::mul", t0 + 200 + 40 * k, 30, **{"Input Dims": [[16], [16]]}),
                       launch(t0 + 210 + 40 * k, 5, c), kernel(MUL, t0 + 9000 + add_extra_us + 20 * k, 5, c)]
        t0 += length
    return write(path, events, device=device)


NPU_BASE_US = 1_700_000_000_000.0  # torch_npu's timestamps: µs since the epoch, written as strings


def npu_event(pid, tid, name, ts, dur, cat=None, **args):
    """An event as msprof writes it: the time a string, the category left out where it has none."""
    return {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": f"{NPU_BASE_US + ts:.3f}", "dur": dur,
            "args": args, **({"cat": cat} if cat else {})}


def npu_steps(path: Path, steps: int = 4) -> Path:
    """torch_npu's layout (msprof's trace_view.json): a JSON array, timestamps as strings, processes named by
    metadata; each step of 1,000 µs runs a 64×64×64 matmul (its task 300 µs), an add (100 µs) and an all-reduce
    on the communication process (200 µs, its notify-wait lane repeating it), which "Overlap Analysis" slices
    again."""
    host, cann, hardware, comm, overlap = 3104, 3178720, 3178944, 3179008, 3179488
    names = {host: "Python", cann: "CANN", hardware: "Ascend Hardware", comm: "Communication",
             overlap: "Overlap Analysis"}
    events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
              for pid, name in names.items()]
    mm = {"Input Dims": "64,64;64,64", "Input type": "c10::BFloat16;c10::BFloat16"}  # torch_npu's one-string form
    for i in range(steps):
        t, c = i * 1000.0, 10 * i
        events += [
            npu_event(host, host, f"ProfilerStep#{i + 1}", t, 1000, "user_annotation"),
            npu_event(host, host, "aten::mm", t + 10, 40, "cpu_op", **mm),
            npu_event(cann, host, "AscendCL@aclnnMm", t + 20, 12, connection_id=c + 1),
            npu_event(hardware, 2, "MatMulV2", t + 100, 300, connection_id=c + 1, **{"Task Type": "AI_CORE"}),
            npu_event(host, host, "aten::add", t + 60, 20, "cpu_op"),
            npu_event(cann, host, "AscendCL@aclnnAdd", t + 65, 10, connection_id=c + 2),
            npu_event(hardware, 2, "Add", t + 400, 100, connection_id=c + 2, **{"Task Type": "AI_VECTOR_CORE"}),
            npu_event(host, host, "hccl:allreduce", t + 90, 30, "cpu_op"),
            npu_event(comm, 1, "hcom_allReduce__123_0_1", t + 500, 200, connection_id=c + 3),
            npu_event(comm, 2, "Notify_Wait", t + 500, 150),
            npu_event(overlap, 0, "Computing", t + 100, 400), npu_event(overlap, 1, "Communication", t + 500, 200),
            npu_event(overlap, 3, "Free", t + 700, 300),
        ]
    path.write_text(json.dumps(events))
    return path
