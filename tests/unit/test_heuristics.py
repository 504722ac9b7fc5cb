"""Unit tests of the heuristics that set the ledger, each on a small input whose answer is computed by hand:
the fixed per-op cost, an op's size and role, short gaps, op categories, the unfused-attention score, each
diagnosis rule, and the job's aggregation over ranks."""

from collections import Counter
from dataclasses import replace

import msgspec
import numpy as np
import pytest
from synth import op, write

from profiler.analysis.records import Signals, Utilization
from profiler.analysis.signals import fixed_cost, size_and_role
from profiler.diagnosis.causes import CAUSES, diagnose, evidence_sentence
from profiler.mfu.job import job_figures, medians_of_the_others, stragglers
from profiler.mfu.memory import memory_parts
from profiler.mfu.observed import observed
from profiler.mfu.records import (
    Attribution,
    Communication,
    Evidence,
    Figures,
    LedgerEntry,
    MemoryFigures,
    Mfu,
    OpRow,
    Share,
    StepRow,
    StepTimes,
)
from profiler.settings import Options
from profiler.trace import classify
from profiler.trace.attention import score_ops
from profiler.trace.intervals import short_gaps
from profiler.trace.links import link
from profiler.trace.load import load_trace
from profiler.trace.metadata import NO_METADATA, RunMetadata


def test_fixed_cost_charges_tiny_ops_whole_and_larger_ones_a_near_empty_ops_duration():
    durations = np.array([10, 10, 12, 8, 10, 100, 50.0])
    numels = np.array([100, 200, 4096, 1, 64, 10**6, 10**6])  # five ops on at most 4096 elements
    assert fixed_cost(durations, numels) == 50 + 10 + 10  # the tiny ones' median is 10 µs
    # fewer than 5 tiny ops: the 10th percentile of all durations (4 + 0.2 · 96 = 23.2) is the floor
    assert fixed_cost(np.array([4, 100, 200.0]), np.array([10, 10**6, 10**6])) == pytest.approx(4 + 23.2 + 23.2)


def test_size_and_role_of_an_op_from_its_recorded_shapes(tmp_path):
    events = [op("aten::add_", 0, 10, **{"Input Dims": [[64, 32], [64, 32], []]}),  # on a parameter
              op("aten::mul", 20, 10, **{"Input Dims": [[8, 16, 32], []]}),  # on activations
              op("aten::relu", 40, 10)]  # no shapes recorded
    trace = load_trace(write(tmp_path / "t.json", events, device=None))
    numel, on_params = size_and_role(trace, link(trace)[0], np.array([0, 1, 2, 0]), {(64, 32)})
    assert numel.tolist()[:2] == [64 * 32, 8 * 16 * 32] and numel[2] == np.iinfo(np.int64).max
    assert on_params.tolist() == [True, False, False, True]


def test_short_gaps_are_the_uncovered_stretches_under_the_limit():
    starts, ends = np.array([0.0, 10.5, 25.0]), np.array([10.0, 20.0, 30.0])
    assert short_gaps(starts, ends, np.array([0.0]), np.array([30.0]), 1.0).tolist() == [0.5]  # not the 5 µs gap
    assert short_gaps(starts, ends, np.array([0.0]), np.array([30.0]), 10.0).tolist() == [5.5]


def test_unfused_attention_is_found_by_the_score_matrix_its_ops_touch(tmp_path):
    L = 64
    dims = lambda *shapes: {"Input Dims": [list(s) for s in shapes]}  # noqa: E731
    events = [op("aten::bmm", 0, 10, **dims((8, L, 16), (8, 16, L))),  # q·kᵀ: makes the L×L scores
              op("aten::div", 20, 10, **dims((8, L, L), ())),
              op("aten::_softmax", 40, 10, **dims((8, L, L), (), ())),
              op("aten::bmm", 60, 10, **dims((8, L, L), (8, L, 16))),  # scores · v
              op("aten::bmm", 80, 10, **dims((8, 32, 16), (8, 16, 8))),  # another bmm: no L×L matrix
              op("aten::add", 100, 10, **dims((8, 32), (8, 32)))]
    trace = load_trace(write(tmp_path / "t.json", events, device=None))
    assert score_ops(trace).tolist() == [0, 1, 2, 3]
    fused = events + [op("aten::_scaled_dot_product_flash_attention", 120, 10)]
    assert score_ops(load_trace(write(tmp_path / "f.json", fused, device=None))).tolist() == []


GPT_SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "vocab_size": 256}  # a run's model config


def evidence(**changes) -> Evidence:
    """A 100 ms step on a device of 100 TFLOP/s (50 in the dtype that ran), 1 TFLOP per step."""
    base = dict(step_ms=100.0, kind="cuda", dtype="float32", meta=NO_METADATA, peak=100e12, peak_run=50e12, flops=1e12,
                counted_flops=1e12, breakdown={c: Share(0.0, 0.0) for c in classify.CATEGORIES},
                uncounted_matmul_ms=0.0,
                ops=[OpRow(name="aten::gelu", category="other_compute", count=2, ms=3.0, flops=0, tflops_per_s=None),
                     OpRow(name="nccl:all_reduce", category="communication", count=1, ms=7.0, flops=0,
                           tflops_per_s=None)],
                short_idle_ms=1.0, optimizer_overhead_ms=0.5, fixed_ms=2.0, parameter_ms=0.25, copied_bytes=4e6,
                allocator_ms=0.0, sync_ms=0.0, python_ms=0.0, other_ops_per_step=24, step_ms_by_dtype={})
    if isinstance(changes.get("meta"), dict):  # a run's metadata as its trace holds it
        changes["meta"] = msgspec.convert(changes["meta"], RunMetadata)
    signals = changes.pop("signals", Signals(steps=2))  # the analysis' totals, made per step as attribution does
    base["observed"] = observed(signals, changes.get("kind", base["kind"]))
    return Evidence(**{**base, **changes})


def said(found) -> tuple:
    return found.facts, found.fix, found.config


def entry(cause, ms):
    return LedgerEntry(cause=cause, points=ms, ms=ms, what_if_mfu=0.5)  # a 100 ms step: points = ms


def test_each_diagnosis_rule_cites_its_measurements_and_the_fix_that_removes_them():
    sig = Signals(steps=2, dataloaders=Counter({"_SingleProcessDataLoaderIter": 2}), host_ops=400,
                  kernel_us=[5.0, 7.0, 9.0, 11.0], op_counts=Counter({"aten::_softmax": 4, "aten::bmm": 8}),
                  memcpy_bytes=Counter({"Memcpy HtoD (Pageable -> Device)": 8e6}), matmul_us=40_000.0)
    ours = {"num_workers": 0, "pin_memory": False, "batch_size": 8, "model": {**GPT_SHAPE, "n_layer": 4},
            "vocabulary": "profile_run"}
    ev = evidence(signals=sig, meta=ours)
    facts, fix, config = said(CAUSES["io"].rule(entry("io", 20), ev))
    assert facts["ms"] == 20 and facts["share_pct"] == pytest.approx(20.0) and facts["num_workers"] == 0
    assert "single-process (num_workers=0)" in evidence_sentence("io", facts)
    assert config == {"num_workers": 4}
    facts, fix, config = said(CAUSES["small_batch"].rule(entry("small_batch", 10), ev))
    # 1 TFLOP over 200 ops a step; 4 kernels over 2 steps, median of 5, 7, 9, 11 µs
    assert facts["ops_per_step"] == 200 and facts["mflop_per_op"] == pytest.approx(5000.0)
    assert facts["kernels_per_step"] == 2 and facts["median_kernel_us"] == 8.0
    assert config == {"batch_size": 32} and "gradient_accumulation_steps" in fix
    # 10% of the step is per-step cost: 4x the batch does 4x the work in 10 + 4 x 90 ms
    assert CAUSES["small_batch"].rule(entry("small_batch", 10), ev).fix_speedup == pytest.approx(4 / 3.7)
    # our run measured a micro-step at its batch (40 ms) and at 4x (100 ms): the 100 ms step grows by 2 x 60
    measured = evidence(signals=sig, meta={**ours, "gradient_accumulation_steps": 2},
                        step_ms_by_batch={"8": 40.0, "32": 100.0})
    found = CAUSES["small_batch"].rule(entry("small_batch", 10), measured)
    assert found.fix_speedup == pytest.approx(4 * 100 / (100 + 2 * 60)) == found.facts["measured_batch_speedup"]
    assert (found.facts["batch_micro_step_ms"], found.facts["larger_batch_micro_step_ms"],
            found.facts["larger_batch_size"], found.facts["batch_added_ms"]) == (40.0, 100.0, 32, 120.0)
    # the trace shows 10 ms of data loading in the 100 ms step: 4x the samples take 30 ms more to load, which the
    # micro-steps leave out (tune measured x1.14 where the micro-steps alone predicted x2.02)
    loading = {c: Share(10.0 if c == "data_loading" else 0.0, 0.1 if c == "data_loading" else 0.0)
               for c in classify.CATEGORIES}
    found = CAUSES["small_batch"].rule(entry("small_batch", 10), evidence(
        signals=sig, meta={**ours, "gradient_accumulation_steps": 2}, step_ms_by_batch={"8": 40.0, "32": 100.0},
        breakdown=loading))
    assert found.facts["batch_loading_added_ms"] == 30.0 and found.facts["batch_added_ms"] == 150.0
    assert found.fix_speedup == pytest.approx(4 * 100 / (100 + 150))
    assert "(30.00 ms of it data loading, which grows with the samples)" in evidence_sentence("small_batch",
                                                                                             found.facts)
    # 6 ms of host-to-device copies over 2 steps, 2 ms of them exposed (the memory category): the batch's copy
    # grows with the samples as well, by 3 x 2 ms; a device-to-host copy (a loss) does not
    copies = {**loading, "memory": Share(2.0, 0.02)}
    copied = Signals(steps=2, memcpy_us=Counter({"Memcpy HtoD (Pinned -> Device)": 6000.0,
                                                "Memcpy DtoH (Device -> Pinned)": 9000.0}))
    found = CAUSES["small_batch"].rule(entry("small_batch", 10), evidence(
        signals=copied, meta={**ours, "gradient_accumulation_steps": 2}, step_ms_by_batch={"8": 40.0, "32": 100.0},
        breakdown=copies))
    assert found.facts["batch_copies_added_ms"] == 6.0 and found.facts["batch_added_ms"] == 156.0
    assert found.fix_speedup == pytest.approx(4 * 100 / (100 + 156))
    assert ("(30.00 ms of it data loading and 6.00 ms of it copying the batch to the device, which grow with the "
            "samples)") in evidence_sentence("small_batch", found.facts)
    facts, fix, config = said(CAUSES["non_fused"].rule(entry("non_fused", 8), ev))
    assert facts["ops_per_layer"] == 6 and (facts["softmax_per_step"], facts["bmm_per_step"]) == (2, 4)
    assert config == {"attention": "sdpa"}
    facts, fix, config = said(CAUSES["memory_ops"].rule(entry("memory_ops", 3), ev))
    assert facts["copied_mb"] == 4.0 and facts["memcpy_kinds"] == [{"kind": "Memcpy HtoD (Pageable -> Device)",
                                                                    "mb": 4.0}]
    assert config == {"pin_memory": True}
    facts, fix, config = said(CAUSES["communication"].rule(entry("communication", 7), ev))
    assert facts["collectives"] == [{"name": "nccl:all_reduce", "ms": 7.0}] and config is None
    facts, fix, config = said(CAUSES["precision"].rule(entry("precision", 10), ev))
    assert (facts["ms_at_peak_run"], facts["ms_at_peak"]) == (20.0, 10.0)  # 1 TFLOP at 50 and at 100 TFLOP/s
    assert config == {"dtype": "bfloat16"} and "allow_tf32" in fix
    facts, fix, config = said(CAUSES["matmul_efficiency"].rule(entry("matmul_efficiency", 20), ev))
    # 2 TFLOP in 40 ms over the 2 steps
    assert facts["counted_tflop_per_s"] == pytest.approx(50) and facts["counted_of_peak_run_pct"] == pytest.approx(100)
    facts, fix, config = said(CAUSES["other"].rule(entry("other", 5), evidence(sync_ms=4.0, signals=Signals(
        steps=2, stall_calls=Counter({"cudaStreamSynchronize": 6}), stall_sites=Counter({"aten::item": 6})))))
    assert facts["sync_ms"] == 4.0 and facts["stall_calls"] == [{"name": "cudaStreamSynchronize", "per_step": 3}]
    assert facts["stall_sites"] == [{"name": "aten::item", "per_step": 3}] and ".item()" in fix
    assert "3 cudaStreamSynchronize per step, made in aten::item (3)" in evidence_sentence("other", facts)


def test_matmul_efficiency_says_why_precision_holds_none_where_bfloat16_measured_slower():
    """A CPU run in float32 whose bfloat16 micro-step measured slower (53.5 against 46.0 ms): precision is 0, and
    the evidence says so from the measurement instead of quoting 0.00 ms unexplained; no measurement, no claim."""
    sig = Signals(steps=2, matmul_us=40_000.0)
    measured = evidence(signals=sig, kind="cpu", fastest_dtype="bfloat16", precision_ms=0.0,
                        step_ms_by_dtype={"float32": 46.02, "bfloat16": 53.53})
    facts = CAUSES["matmul_efficiency"].rule(entry("matmul_efficiency", 20), measured).facts
    assert facts["precision_takes_none"] and facts["measured_by"] == "micro_step"
    assert (facts["micro_step_ms"], facts["target_micro_step_ms"], facts["target_dtype"]) == (46.02, 53.53,
                                                                                              "bfloat16")
    assert ("precision takes none of it: measured before the run at its shapes, a micro-step's forward and backward "
            "took 46.02 ms in float32 and 53.53 ms in bfloat16") in evidence_sentence("matmul_efficiency", facts)
    unmeasured = CAUSES["matmul_efficiency"].rule(entry("matmul_efficiency", 20),
                                            evidence(signals=sig, kind="cpu", precision_ms=0.0)).facts
    assert "precision_takes_none" not in unmeasured


def test_non_fused_fix_is_predicted_from_its_parts_timed_at_the_runs_shapes():
    """Our CPU run timed SDPA slower than its manual attention (40 against 30 ms a micro-step, 2 micro-steps) and a
    fused AdamW faster than its loop (1 against 8 ms): the fix takes 2 x -10 + 7 = -13 ms from the 100 ms step,
    x100/113, a slow-down that the evidence says; the what-if's upper bound is another figure."""
    sig = Signals(steps=2, op_counts=Counter({"aten::_softmax": 4, "aten::bmm": 8}), optimizers=Counter({"AdamW": 2}),
                  optimizer_ops=400, optimizer_op_counts=Counter({"aten::lerp_": 54, "aten::add_": 108}))
    meta = {"vocabulary": "profile_run", "model": {**GPT_SHAPE, "attention": "manual"}, "optimizer_impl": "loop",
            "gradient_accumulation_steps": 2,
            "step_ms_by_fix": {"attention": {"manual": 30.0, "sdpa": 40.0}, "optimizer": {"loop": 8.0, "fused": 1.0}}}
    found = CAUSES["non_fused"].rule(entry("non_fused", 20), evidence(signals=sig, meta=meta, kind="cpu"))
    assert found.config == {"attention": "sdpa", "optimizer_impl": "fused"}
    assert found.fix_speedup == pytest.approx(100 / 113) == found.facts["measured_fix_speedup"]
    assert found.facts["fix_saved_ms"] == -13.0
    assert (found.facts["optimizer_seen"], found.facts["optimizer_work_per_step"]) == ("loop", 200)
    assert found.facts["optimizer_ops"] == [{"name": "add_", "per_step": 54}, {"name": "lerp_", "per_step": 27}]
    assert ("30.00 ms with manual attention, 40.00 ms with SDPA; an optimizer step 8.00 ms loop, 1.00 ms fused: the "
            "fix takes -13.00 ms from the 100.00 ms step, x0.88") in evidence_sentence("non_fused", found.facts)
    unmeasured = CAUSES["non_fused"].rule(entry("non_fused", 20), evidence(signals=sig, meta={}, kind="cpu"))
    assert unmeasured.fix_speedup is None and "measured_fix_speedup" not in unmeasured.facts


def test_diagnose_keeps_causes_from_the_threshold_and_configs_only_for_our_runs():
    entries = [entry("io", 20), entry("other", 0.5), entry("precision", 30)]
    foreign = diagnose(entries, evidence())
    assert [b.cause for b in foreign] == ["precision", "io"] and all(b.fix_config is None for b in foreign)
    ours = diagnose(entries, evidence(meta={"num_workers": 0, "pin_memory": False, "vocabulary": "profile_run"}),
                    min_points=0.1)
    assert [b.cause for b in ours] == ["precision", "io", "other"] and ours[1].fix_config == {"num_workers": 4}


def rank(r: int, step_ms: float, comm_ms: float, loading_ms: float, ops: list[OpRow]) -> Attribution:
    breakdown = {c: Share(0.0, 0.0) for c in classify.CATEGORIES}
    breakdown["communication"] = Share(comm_ms, comm_ms / step_ms)
    breakdown["data_loading"] = Share(loading_ms, loading_ms / step_ms)
    breakdown["idle"] = Share(step_ms - comm_ms - loading_ms, 1 - (comm_ms + loading_ms) / step_ms)
    fig = Figures(step_time_ms=StepTimes(step_ms, step_ms, step_ms), device_utilization=Utilization(step_ms, 0.5),
                  mfu=Mfu(analytic=0.1, counted=0.1, flops_analytic=1.0, flops_counted=1.0, analytic_from=None),
                  breakdown=breakdown, ledger=[], bottlenecks=[], top_ops=ops,
                  classification_ms=None, copied_bytes_per_step=0.0, matmul_without_flops_ms=0.0,
                  communication=Communication(total_ms=comm_ms, exposed_ms=comm_ms, exposed_fraction=1.0,
                                              calls_per_step={"c10d::allreduce_": 1.0}, bytes_per_step=None),
                  per_step=[StepRow(7, step_ms, {c: s.ms for c, s in breakdown.items()})])
    return Attribution(rank=r, figures=fig, steps=None, overheads=None, seconds={}, evidence=None)


def test_job_figures_are_means_over_ranks_and_the_straggler_is_named_by_busy_time():
    def mm(ms, tflops):
        return OpRow(name="aten::mm", category="matmul", count=1.0, ms=ms, flops=ms * 1e9 * tflops, tflops_per_s=tflops,
                     flop_ms=ms)

    ranks = [rank(0, 100.0, 30.0, 0.0, [mm(2.0, 1.0)]), rank(1, 100.0, 5.0, 25.0, [mm(4.0, 2.0)]),
             rank(2, 100.0, 28.0, 0.0, [])]
    job = job_figures(ranks)
    assert job.breakdown["communication"].ms == pytest.approx(21.0) and job.step_time_ms.mean == 100.0
    assert job.communication.exposed_ms == pytest.approx(21.0) and job.per_step[0].ms == 100.0
    top = job.top_ops[0]
    assert top.ms == pytest.approx(2.0)  # (2 + 4 + 0) / 3 ranks
    assert top.tflops_per_s == pytest.approx((2e9 + 8e9) / ((2e9 / 1e12) + (8e9 / 2e12)) / 1e12)  # FLOPs over time
    found = stragglers(ranks)  # busy: 70, 95, 72 ms: rank 1 is 24 ms over the others' median of 71
    assert [(s.rank, s.category) for s in found] == [(1, "data_loading")] and found[0].excess_ms == pytest.approx(24)


def test_a_failing_cycle_analysis_never_ends_the_training(tmp_path, monkeypatch):
    """RunLog analyses each cycle inside the training loop: an error of ours there is one line, and training
    goes on."""
    from profiler.capture import tensorboard

    def broken(path, options):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(tensorboard, "analyze_view", broken)
    said = []
    log = tensorboard.RunLog(tmp_path, Options(), said.append)
    log.trace_written(tmp_path / "cycle.pt.trace.json", 8)
    log.close()
    assert log.cycle_line == ("profiler cycle ending at step 8: not analysed (internal error ZeroDivisionError: "
                              "float division by zero; please report it with the trace)")


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 64])
def test_the_median_of_the_other_ranks_comes_from_one_sort(n):
    values = np.random.default_rng(n).integers(0, 6, n).astype(float)  # ties included
    expected = [np.median(np.delete(values, i)) for i in range(n)]
    assert medians_of_the_others(values).tolist() == pytest.approx(expected)


def test_a_warning_from_many_ranks_names_them_as_runs():
    from profiler.pipeline import rank_ranges

    assert rank_ranges([5, 0, 1, 2, 3, 7, 8, 9]) == "0-3, 5, 7-9"
    assert rank_ranges(list(range(16383))) == "0-16382" and rank_ranges([4]) == "4"


def test_small_batch_proposes_the_largest_batch_the_memory_holds():
    """Our run at batch 8: 10 GB live across steps (parameters, AdamW's states), micro-step transients of 12 GB
    at 8 and 36 GB at 32: 1 GB a sample over a 4 GB base that holds the gradients."""
    parts = memory_parts(msgspec.convert({"batch_size": 8, "memory_parts": {
        "parameters": 2e9, "gradients": 2e9, "optimizer_state": 8e9,
        "transient_bytes_by_batch": {"8": 12e9, "32": 36e9}}}, RunMetadata), 4)
    assert parts["activations_per_sample"] == 1e9 and parts["predicted_peak_bytes_by_batch"] == {
        "8": 22e9, "16": 30e9, "24": 38e9, "32": 46e9}
    memory = MemoryFigures(device="cuda:0", source="totals", capacity_bytes=36e9, capacity_source="deviceProperties",
                           peak_allocated_bytes=26e9, peak_reserved_bytes=28e9, at_step_start_bytes=10e9,
                           transient_peak_bytes=16e9, reserved_free_bytes=2e9, allocator_calls_per_step=0.0,
                           allocator_ms_per_step=0.0, batch_headroom=None, parts=parts)
    ours = {"batch_size": 8, "vocabulary": "profile_run"}
    measured = evidence(meta=ours, memory=memory, step_ms_by_batch={"8": 40.0, "32": 100.0})
    found = CAUSES["small_batch"].rule(entry("small_batch", 10), measured)
    # 36 GB x 0.9 = 32.4 GB: batch 16 (30 GB) fits, 24 (38 GB) does not
    assert found.config == {"batch_size": 16} and found.facts["fit_peak"] == 30.0
    assert "(batch 16: 30.00 of 36.00 GB predicted)" in found.fix
    # its speed-up is for batch 16: the micro-step at 16, linear between 8 and 32, is 60 ms
    assert found.facts["larger_batch_micro_step_ms"] == 60.0 and found.fix_speedup == pytest.approx(2 * 100 / 120)
    text = evidence_sentence("small_batch", found.facts)
    assert "the memory holds batch 16: 30.00 GB predicted of 36.00 GB (deviceProperties" in text
    assert "100.00 ms at 32, so about 60.00 ms at 16" in text
    # 28 GB: not even batch 16 fits; what frees memory, and no change to try
    tight = replace(memory, capacity_bytes=28e9)
    found = CAUSES["small_batch"].rule(entry("small_batch", 10), evidence(meta=ours, memory=tight,
                                                                     step_ms_by_batch={"8": 40.0, "32": 100.0}))
    assert found.config is None and found.fix_speedup is None and found.fix.startswith("free memory first")
    ways = {a["name"].split(" (")[0]: a["frees"] for a in found.facts["alternatives"]}
    assert ways == {"activation checkpointing": 8.0, "optimizer-state sharding over 8 ranks": 7.0,
                    "bfloat16 activations under autocast": 4.0, "gradient accumulation": 0.0}
    assert "twice the batch does not fit: 30.00 GB predicted of 28.00 GB" in evidence_sentence("small_batch",
                                                                                              found.facts)
    # another program's trace: its level and transient, linear in the batch (10 + 16k GB: x2 fits 50 GB)
    foreign = CAUSES["small_batch"].rule(entry("small_batch", 10), evidence(
        memory=replace(memory, parts=None, capacity_bytes=50e9)))
    assert foreign.facts["fit_factor"] == 2 and foreign.facts["fit_by"] == "linear" and foreign.config is None
    assert "the memory holds 2x the batch: 42.00 GB predicted" in evidence_sentence("small_batch", foreign.facts)
