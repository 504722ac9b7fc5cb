"""memory_ops: copies and memsets no compute hides, and allocator calls while the device idles."""

from typing import NotRequired, TypedDict

from profiler.diagnosis.ceilings import CopyLinks, copy_links, copy_links_words, op_name
from profiler.diagnosis.finding import CauseEntry, Finding, share, stall_calls, step_pct
from profiler.diagnosis.words import ShareFacts, StallFacts, of_step, share_words, stalls
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.mfu.vocabulary import settings
from profiler.settings import HEADLINE_SHARE, MEGA
from profiler.trace.classify import ALLOCATOR_CALL


class MemoryOp(TypedDict):
    name: str
    per_step: float
    ms: float


class MemcpyKind(TypedDict):
    kind: str
    mb: float


class MemoryOpsFacts(ShareFacts, StallFacts, CopyLinks):
    kind: str
    copied_mb: float
    memory_ops: NotRequired[list[MemoryOp]]  # on a CPU: the in-memory copies, casts and fills, by op
    memcpy_kinds: NotRequired[list[MemcpyKind]]  # on a device: the copies by kind (HtoD, DtoD, ...)
    allocator_ms: NotRequired[float]  # where allocator calls hold much of it
    allocator_pct: NotRequired[float]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[MemoryOpsFacts]:
    seen = evidence.observed
    facts: MemoryOpsFacts = {"kind": evidence.kind, **share(entry.ms, evidence),
                             "copied_mb": evidence.copied_bytes / MEGA}
    if evidence.kind == "cpu":  # nothing crosses a link: in-memory copies, casts and fills, named by their ops
        ops: list[MemoryOp] = [{"name": op_name(op), "per_step": op.count, "ms": op.ms}
                               for op in evidence.ops if op.category == "memory"]
        facts["memory_ops"] = ops[:3]
        fix = FEWER_COPIES_ON_CPU
    else:
        facts["memcpy_kinds"] = [{"kind": c.kind, "mb": c.bytes / MEGA} for c in seen.copies[:3]]
        fix = PINNED_AND_FEWER_COPIES
    if evidence.allocator_ms >= HEADLINE_SHARE * entry.ms:
        facts = {**facts, "allocator_ms": evidence.allocator_ms,
                 "allocator_pct": step_pct(evidence.allocator_ms, evidence), **stall_calls(seen, ALLOCATOR_CALL)}
        fix = ALLOCATIONS_OUT_OF_THE_STEP
    facts = {**facts, **copy_links(evidence)}
    pageable = any("Pageable" in c.kind for c in seen.copies)
    pinned = settings(evidence.meta).get("pin_memory")
    return Finding(facts=facts, fix=fix, config={"pin_memory": True} if pageable and not pinned else None)


FEWER_COPIES_ON_CPU = ("fewer copies in the step: no .to(dtype) / .contiguous() / .clone() that the next op does not "
                       "need, tensors made in the dtype and layout they are used in; on a CPU nothing crosses a link, "
                       "so pinned memory does not apply")
PINNED_AND_FEWER_COPIES = ("pinned host memory with .to(device, non_blocking=True); fewer .to() / .contiguous() / "
                           ".clone() in the step")
ALLOCATIONS_OUT_OF_THE_STEP = (
    "keep device allocations out of the step: leave PyTorch's caching allocator on (no "
    "PYTORCH_NO_CUDA_MEMORY_CACHING / PYTORCH_NO_HIP_MEMORY_CACHING), tune it with "
    "PYTORCH_CUDA_ALLOC_CONF / PYTORCH_HIP_ALLOC_CONF=expandable_segments:True, and set "
    "torch.backends.cudnn.benchmark = True so cuDNN / MIOpen choose algorithms and workspaces once")


def evidence_words(f: MemoryOpsFacts) -> str:
    text = f"copies and memsets {share_words(f)}"
    if f["kind"] == "cpu":
        ops = f["memory_ops"]
        text += (f"; {f['copied_mb']:.1f} MB per step copied" + (
            ", largest: " + ", ".join(f"{op['per_step']:,.0f} {op['name']} per step ({op['ms']:.2f} ms)" for op in ops)
            if ops else ""))
    else:
        kinds = ", ".join(f"{k['kind']} {k['mb']:.1f} MB" for k in f["memcpy_kinds"])
        text += f"; {f['copied_mb']:.1f} MB per step" + (f" ({kinds})" if kinds else "")
    if "allocator_ms" in f:
        text = f"allocator calls with the device idle {of_step(f['allocator_ms'], f['allocator_pct'])}: " \
               f"{stalls(f)}; " + text
    links = copy_links_words(f)
    return text + (f"; {links}" if links else "")


MEMORY_OPS = CauseEntry(rule=rule, evidence=evidence_words, what="copies, memsets, allocator calls",
                        categories=("memory", "host_overhead"))
