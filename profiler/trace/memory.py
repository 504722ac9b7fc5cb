"""The allocator's memory events (`profile_memory=True`) as columns: one row per `[memory]` instant event.

Kineto writes, for every allocation and free on every device: `Bytes` (+ allocated, − freed) and, since about
torch 1.10, `Total Allocated` and `Total Reserved` after it, with `Device Type` (c10's: 0 the CPU, 1 CUDA, which
ROCm builds use too) and `Device Id`. The 2021 traces carry `Bytes` alone: only changes, no level.
"""

from dataclasses import dataclass

import numpy as np

CPU_DEVICE_TYPE = 0
DEVICE_TYPES = {0: "cpu", 1: "cuda", 12: "xpu", 13: "mps", 15: "hpu", 19: "mtia", 20: "privateuse1"}


@dataclass(frozen=True, kw_only=True)
class MemoryEvents:
    """The memory events of one trace, in time order (µs from the trace's first complete event)."""

    ts: np.ndarray  # float64
    nbytes: np.ndarray  # int64: + allocated, − freed
    allocated: np.ndarray  # int64 total allocated on the device after the event, -1 where not recorded
    reserved: np.ndarray  # int64 total reserved by the caching allocator, -1 where not recorded
    device: np.ndarray  # int32 code into `devices`
    devices: list[tuple[int, int]]  # (device type, device id) of each code

    def __len__(self):
        return len(self.ts)

    def of_device(self, code: int) -> "MemoryEvents":
        rows = self.device == code
        return MemoryEvents(ts=self.ts[rows], nbytes=self.nbytes[rows], allocated=self.allocated[rows],
                            reserved=self.reserved[rows], device=self.device[rows], devices=self.devices)


NO_MEMORY_EVENTS = MemoryEvents(ts=np.zeros(0), nbytes=np.zeros(0, np.int64), allocated=np.zeros(0, np.int64),
                                reserved=np.zeros(0, np.int64), device=np.zeros(0, np.int32), devices=[])


def device_label(device: tuple[int, int]) -> str:
    """"cuda:0", "cpu": the device as torch names it."""
    kind, index = device
    name = DEVICE_TYPES.get(kind, f"device type {kind}")
    return name if kind == CPU_DEVICE_TYPE or index < 0 else f"{name}:{index}"


def memory_events(columns: dict[str, np.ndarray], origin_us: float) -> MemoryEvents:
    """The `[memory]` events in time order, from the reader's columns (trace/columns.py); those without a finite
    time are left out."""
    finite = np.isfinite(columns["ts"])
    recorded = {name: column[finite] for name, column in columns.items()}
    if not finite.any():
        return NO_MEMORY_EVENTS
    pairs = recorded["device_type"] * (1 << 32) + recorded["device_id"]  # a device's (type, id), in one number
    _, first, code = np.unique(pairs, return_index=True, return_inverse=True)
    by_first = np.argsort(first)  # devices numbered in the order they first appear
    device = np.argsort(by_first)[code.reshape(-1)].astype(np.int32)
    devices = [(int(recorded["device_type"][first[k]]), int(recorded["device_id"][first[k]])) for k in by_first]
    ts = recorded["ts"] - origin_us
    order = np.argsort(ts, kind="stable")
    return MemoryEvents(ts=ts[order], nbytes=recorded["nbytes"][order], allocated=recorded["allocated"][order],
                        reserved=recorded["reserved"][order], device=device[order], devices=devices)
