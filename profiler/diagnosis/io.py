"""io: the device (on a CPU, the training thread) waits in DataLoader and data-loading spans."""

from typing import NotRequired

from profiler.diagnosis.finding import CauseEntry, Finding, largest_ms, share
from profiler.diagnosis.words import Largest, ShareFacts, largest, share_words
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.mfu.vocabulary import settings


class IoFacts(ShareFacts):
    kind: str
    dataloaders: list[str]
    num_workers: NotRequired[int]  # as the run set them, where it states its configuration
    pin_memory: NotRequired[bool]
    data_preparation: NotRequired[list[Largest]]  # Python frames preparing data inside the step


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[IoFacts]:
    seen = evidence.observed
    meta = settings(evidence.meta)
    facts: IoFacts = {"kind": evidence.kind, **share(entry.ms, evidence), "dataloaders": list(seen.dataloaders)}
    if "num_workers" in meta:
        facts["num_workers"] = meta["num_workers"]
        facts["pin_memory"] = meta.get("pin_memory", False)
    fix = LOAD_IN_PARALLEL
    if seen.data_preparation_ms:
        facts["data_preparation"] = largest_ms(seen.data_preparation_ms)
        fix = PREPARE_AHEAD
    return Finding(facts=facts, fix=fix, config={"num_workers": max(4, 2 * meta.get("num_workers", 0))})


LOAD_IN_PARALLEL = ("load in parallel: DataLoader(num_workers=4, pin_memory=True, persistent_workers=True, "
                    "prefetch_factor=2); make __getitem__ cheaper or the storage faster")
PREPARE_AHEAD = ("decode and preprocess ahead of the step, in DataLoader worker processes (num_workers > 0) or on "
                 "the device (GPU video / image decoding, batched tensor transforms), so the device never waits")


def evidence_words(f: IoFacts) -> str:
    loaders = {"SingleProcess": "single-process (num_workers=0)", "MultiProcessing": "worker processes"}
    kinds = ", ".join(next((said for k, said in loaders.items() if k in name), name) for name in f["dataloaders"])
    setting = (f"; the run used num_workers={f['num_workers']}, pin_memory={f['pin_memory']}"
               if "num_workers" in f else "")
    waiting = "the device idles" if f["kind"] != "cpu" else "the training thread waits"
    text = (f"{waiting} in data loading {share_words(f)}; DataLoader: "
            f"{kinds or 'no DataLoader spans (data-loading annotations)'}{setting}")
    if f.get("data_preparation"):
        text += f"; data preparation in Python inside the step (largest frames, per step): " \
                f"{largest(f['data_preparation'])}"
    return text


IO = CauseEntry(rule=rule, evidence=evidence_words,
                what="the device waits on data loading", categories=("data_loading",))
