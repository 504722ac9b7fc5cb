"""The allocator's memory events (`profile_memory=True`) as columns: one row per `[memory]` instant event.

Kineto writes, for every allocation and free on every device: `Bytes` (+ allocated, − freed) and, since about
torch 1.10, `Total Allocated` and `Total Reserved` after it, with `Device Type` (c10's: 0 the CPU, 1 CUDA, which
ROCm builds use too) and `Device Id`. The 2021 traces carry `Bytes` alone: only changes, no level.
"""

from dataclasses import dataclass

import msgspec
import numpy as np

MEMORY_EVENT = "[memory]"
CPU_DEVICE_TYPE = 0
DEVICE_TYPES = {0: "cpu", 1: "cuda", 12: "xpu", 13: "mps", 15: "hpu", 19: "mtia", 20: "privateuse1"}


class MemoryArgs(msgspec.Struct, rename={"nbytes": "Bytes", "allocated": "Total Allocated",
                                         "reserved": "Total Reserved", "device_type": "Device Type",
                                         "device_id": "Device Id"}):
    nbytes: int = 0
    allocated: int = -1  # -1: not recorded (Bytes-only traces)
    reserved: int = -1
    device_type: int = CPU_DEVICE_TYPE
    device_id: int = -1


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


def memory_events(events: list, origin_us: float) -> MemoryEvents:
    """The `[memory]` instant events among a trace's decoded events, their args decoded in one call (a list of
    their raw texts); events without a finite time or with args of another shape are left out."""
    ts = np.fromiter((e.ts for e in events), float, len(events))
    decoded: list[MemoryArgs | None]
    try:
        decoded = msgspec.json.decode(b"[" + b",".join(bytes(e.args) for e in events) + b"]", type=list[MemoryArgs])
    except msgspec.DecodeError:  # one of another shape: each on its own, that one left out
        decoded = [_args(e.args) for e in events]
        ts[[a is None for a in decoded]] = np.nan
    keep = np.isfinite(ts)
    if not keep.any():
        return NO_MEMORY_EVENTS
    devices: dict[tuple[int, int], int] = {}
    columns = np.array([(a.nbytes, a.allocated, a.reserved, devices.setdefault((a.device_type, a.device_id),
                                                                               len(devices)))
                        for a, k in zip(decoded, keep) if k and a is not None],
                       dtype=[("nbytes", "i8"), ("allocated", "i8"), ("reserved", "i8"), ("device", "i4")])
    ts = ts[keep] - origin_us
    order = np.argsort(ts, kind="stable")
    return MemoryEvents(ts=ts[order], nbytes=columns["nbytes"][order], allocated=columns["allocated"][order],
                        reserved=columns["reserved"][order], device=columns["device"][order], devices=list(devices))


def _args(raw) -> MemoryArgs | None:
    try:
        return msgspec.json.decode(raw, type=MemoryArgs)
    except msgspec.DecodeError:
        return None
