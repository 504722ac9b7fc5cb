"""What each event of a trace is, whatever its writer called it: Kineto's category names across versions and
backends, and the layouts that name events by their process instead (torch_npu's)."""

from enum import IntEnum

import numpy as np


# event kinds, by the trace's category names across Kineto versions and backends (CUDA, ROCm/HIP, MTIA, XPU,
# Gaudi, PrivateUse1); torch 1.x wrote "Operator", "Kernel", "Runtime"
class Kind(IntEnum):
    """What an event is, whatever its trace called it: the values fill Trace.kind."""

    OP = 0  # an operator on the host (ATen, a custom op, a collective's host side)
    ANNOTATION = 1  # a user's record_function, ProfilerStep#N, DataLoader and optimizer spans
    PYTHON = 2  # a Python frame (with_stack / the Python tracer)
    RUNTIME = 3  # a runtime or driver call (cudaLaunchKernel, hipMemcpy, ...)
    KERNEL = 4
    MEMCPY = 5
    MEMSET = 6
    OTHER = 7


OP, ANNOTATION, PYTHON, RUNTIME, KERNEL, MEMCPY, MEMSET, OTHER = Kind
DEVICE_KINDS = (KERNEL, MEMCPY, MEMSET)
KIND_OF_CATEGORY = {
    "cpu_op": OP, "operator": OP,
    "user_annotation": ANNOTATION,
    "python_function": PYTHON, "python": PYTHON,
    "cuda_runtime": RUNTIME, "runtime": RUNTIME, "cuda_driver": RUNTIME, "hip_runtime": RUNTIME,
    "mtia_runtime": RUNTIME, "xpu_runtime": RUNTIME, "xpu_driver": RUNTIME, "privateuse1_runtime": RUNTIME,
    "privateuse1_driver": RUNTIME, "glow_runtime": RUNTIME, "mlu_runtime": RUNTIME,
    "kernel": KERNEL, "mtia_ccp_events": KERNEL, "hpu_op": KERNEL,
    "gpu_memcpy": MEMCPY, "memcpy": MEMCPY, "mlu_memcpy": MEMCPY,
    "gpu_memset": MEMSET, "memset": MEMSET, "mlu_memset": MEMSET,
}
# categories Kineto writes that hold no time of their own for the analysis (mirrors, markers, counters)
IGNORED_CATEGORIES = {
    "gpu_user_annotation", "mlu_user_annotation", "external_correlation", "cpu_instant_event", "overhead",
    "mtia_insight", "mtia_counters", "cuda_sync", "cuda_event", "xpu_sync", "cuda_profiler_range",
    "mlu_profiler_range", "collective_comm", "xpu_scope_profiler", "trace", "",
    "enqueue", "dequeue", "gc",  # torch_npu's task queue (inside the ops that fill it) and Python's collector
}
# torch_npu (msprof) writes its events by process, most without a category: the hardware's tasks are device
# events, CANN's calls the runtime (on the thread of the host op that made them), the communication process's
# `hcom_*` ops the device's collectives (its task lanes repeat them), and "Overlap Analysis" only re-slices the
# same time into computing / communication / free
DEVICE_PROCESS, RUNTIME_PROCESS = "Ascend Hardware", "CANN"
COMMUNICATION_PROCESSES = {"Communication", "HCCL"}
DERIVED_PROCESSES = {"Overlap Analysis"}
COMMUNICATION_TASK = "hcom_"
# the accelerator behind the device events, from the runtime's category or call names
BACKEND_OF_CATEGORY = {"mtia_runtime": "mtia", "mtia_ccp_events": "mtia", "xpu_runtime": "xpu", "xpu_driver": "xpu",
                       "privateuse1_runtime": "privateuse1", "privateuse1_driver": "privateuse1", "hpu_op": "hpu",
                       "hip_runtime": "rocm", "mlu_runtime": "mlu"}


def by_process(kind: np.ndarray, thread: np.ndarray, name: np.ndarray, columns) -> tuple[np.ndarray, np.ndarray]:
    """Kinds and threads by the process an event is in, where its category says nothing (torch_npu's layout):
    a CANN call moves to the host thread of the same id, where the op that made it runs."""
    process = [columns.processes.get(pid, "") for pid, _ in columns.threads]
    roles = np.array([(p == DEVICE_PROCESS, p == RUNTIME_PROCESS, p in COMMUNICATION_PROCESSES,
                       p in DERIVED_PROCESSES) for p in process], bool).reshape(-1, 4)
    device, runtime, communication, derived = roles[thread].T
    collective = np.array([n.startswith(COMMUNICATION_TASK) for n in columns.names], bool)[name]
    uncategorized = kind == OTHER
    kind = np.where(uncategorized & (device | (communication & collective)), KERNEL, kind)
    kind = np.where(uncategorized & runtime, RUNTIME, kind)
    kind = np.where(derived | (communication & ~collective), OTHER, kind).astype(np.int8)
    not_host = {DEVICE_PROCESS, RUNTIME_PROCESS} | COMMUNICATION_PROCESSES | DERIVED_PROCESSES
    host_thread = {tid: code for code, ((pid, tid), p) in enumerate(zip(columns.threads, process)) if p not in not_host}
    moved = np.array([host_thread.get(tid, code) if p == RUNTIME_PROCESS else code
                      for code, ((_, tid), p) in enumerate(zip(columns.threads, process))], np.int32)
    return kind, moved[thread]


def backend_of(categories: set[str], names, device_names: list[str], processes: set[str]) -> str:
    """The accelerator the device events ran on: by its process (torch_npu's), the runtime's category, HIP call
    names or an AMD device."""
    if DEVICE_PROCESS in processes:
        return "npu"
    for category in categories:
        if category.lower() in BACKEND_OF_CATEGORY:
            return BACKEND_OF_CATEGORY[category.lower()]
    if any(name.startswith("hip") for name in names) or any("AMD" in d or "Instinct" in d for d in device_names):
        return "rocm"
    return "cuda"
