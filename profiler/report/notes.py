"""The English of the warnings: each note's sentence, written from its numbers and from nothing else.

The stages say what they found as a Note (profiler/facts.py); this module words it, as each cause's module in diagnosis/
words a bottleneck's facts. A number in a sentence is one of the note's numbers in the format shown here.
"""

from collections.abc import Callable

from profiler.facts import Facts, Note

PEAK_HINT = "pass --peak-flops with the peak of the machine that recorded the trace"


def _iterations(n: Facts) -> str:
    if n["by"] == "optimizer_step":
        return (f"{n['iterations']} iterations told apart by the optimizer's step ({n['optimizer']}), each ending "
                "with one")
    if n["by"] == "dataloader":
        return f"{n['iterations']} iterations told apart by the DataLoader's __next__, each beginning with one"
    return "no optimizer step or DataLoader span repeats either: the whole trace is analysed as one step"


def _implausible_flops(n: Facts) -> str:
    against = f"{n['ratio']:.1f}x the" if n["ratio"] is not None else "against the"  # a step that ran no matmul
    return (f"the model's FLOPs ({n['flops_from']}) need {n['ideal_ms']:.2f} ms/step at the peak of "
            f"{n['peak_tflops_per_s']:.3g} TFLOP/s ({n['peak_source']}), {against} {n['span_ms']:.2f} ms "
            f"{n['span']}: the FLOPs per step or the peak is wrong; MFU, the ledger and the diagnosis are left empty: "
            f"check --flops-per-step / --model, or {PEAK_HINT}")


def _uncounted_matmul(n: Facts) -> str:
    return (f"{n['ms']:.2f} ms/step of matmul time ({n['share_pct']:.0f}% of it) ran in ops whose FLOPs the trace "
            "does not let us count (no recorded shapes, or custom ops); F_counted leaves it out; largest: "
            + ", ".join(f"{op['name']} {op['ms']:.2f} ms" for op in n["largest"]))


WHY_NO_MFU: dict[str, Callable[[Facts], str]] = {  # why a rank's ledger is in points of step time
    "no_peak": lambda n: "no peak is known for the device",
    "no_flops": lambda n: "no FLOPs: the model's are unknown and the trace records no shapes to count them by",
    "mostly_uncounted": lambda n: (
        f"most of the matmul time ({n['uncounted_pct']:.0f}%) ran in ops whose FLOPs the trace does not let us count: "
        "F_counted would make their time look like matmul_efficiency"),
    "implausible_peak": lambda n: (
        f"the peak is implausible for this trace: its counted matmuls ran at {n['rate_tflops_per_s']:.3g} TFLOP/s, "
        f"{n['ratio']:.1f}x the {n['peak_run_tflops_per_s']:.3g} TFLOP/s that P_run ({n['dtype']}, "
        f"{n['peak_source']}) allows; MFU, the ledger and the diagnosis are left empty: {PEAK_HINT}"),
    "implausible_flops": _implausible_flops,
}

def _read(n: Facts) -> str:
    return f"{n['mb_read']} MB" if n["mb_read"] else f"{n['bytes_read']} bytes"


NOTES: dict[str, Callable[[Facts], str]] = {
    # reading the file
    "wrong_types_skipped": lambda n: (
        f"{n['events']} events with fields of the wrong type were skipped (first: {n['first_error']})"),
    "buffer_full": lambda n: (
        f"the trace's own log says the profiler's device buffers filled (\"{n['first']}\", {n['messages']} such "
        "line(s)): the device events after that point are missing; profile a shorter window"),
    "kernels_not_recorded": lambda n: (
        f"{n['file']}: {n['launches']:,} of {n['of_launches']:,} kernel launches have no kernel in the trace (the "
        "profiler dropped them): the time they ran is counted as unrecorded, not idle"),
    "graph_replays": lambda n: (
        f"{n['file']}: {n['launches']:,} CUDA graph launches replayed {n['kernels']:,} recorded kernels"
        + (f"; {n['without_kernels']:,} recorded none: their replay is counted as unrecorded device work, not idle"
           if n["without_kernels"] else "")),
    "device_events_outside_host": lambda n: (
        f"{n['file']}: {n['events']:,} device events ran before the first or after the last host event, with no "
        "launch recorded: the host's side of them was lost"),
    "file_cut_short": lambda n: (
        f"{n['why']}, after {n['events']} events ({_read(n)} read): the report covers what was "
        "read, and the events written after the cut (often the device's, and the last step's) are missing"),
    "unusable_times": lambda n: (
        f"{n['events']} complete events without a usable ts or dur (missing, not finite, or more than a day from the "
        "others) were skipped"),
    "unknown_categories": lambda n: (
        "events of categories the analyzer does not know were not analysed: "
        + ", ".join(f"{c['category']} ({c['events']})" for c in n["categories"])),
    "negative_durations": lambda n: f"{n['events']} events with a negative duration were given duration 0",
    "no_input_shapes": lambda n: (
        f"{n['ops']} matmul/attention/convolution ops recorded no usable input shapes: their FLOPs are not counted "
        "(record the trace with record_shapes=True)"),
    "convolution_output_unknown": lambda n: (
        f"{n['ops']} convolutions recorded their input shapes but not stride and padding (torch before 2.0 writes no "
        "Concrete Inputs), and neither a backward op nor the op after them gave their output size: their FLOPs are "
        "not counted"),
    # steps
    "no_step_markers": lambda n: f"{n['file']}: no ProfilerStep markers: {_iterations(n)}",
    "repeated_step_numbers": lambda n: (
        f"{n['markers']} ProfilerStep markers repeat a step number: only the first is used"),
    "last_step_dropped": lambda n: (
        f"last step {n['step']} dropped: it launched under {n['device_share_pct']:.0f}% of the device work of the step "
        "before, so the profiler stopped before its kernels ran (as torch-tb-profiler does)"),
    "zero_length_steps_dropped": lambda n: (
        f"{n['steps']} step(s) of zero length dropped (nothing with a duration in them)"),
    "no_host_ops": lambda n: (
        "the trace holds device events but no host ops (CPU activity was not recorded): no FLOPs can be counted, "
        "kernels are classified by their names only, and the device's idle time cannot be told apart into data "
        "loading, host overhead and idle"),
    "no_ops_or_device_events": lambda n: (
        "the trace holds neither ops nor device events: only annotations and Python frames were analysed"),
    "clock_skew": lambda n: (
        f"host and device clocks disagree: {n['early_pct']:.0f}% of device events start before the call that "
        f"launched them (by up to {n['lead_ms']:.2f} ms): step boundaries and the host's share of device idle time "
        "are approximate"),
    # a rank's files
    "file_repeats_steps": lambda n: (
        f"{n['file']}: its steps {n['steps']} all appear in an earlier file of the same rank: the file is left out"),
    "steps_repeated": lambda n: (
        f"{n['file']}: steps {n['steps']} appear in an earlier file of the same rank: their figures are counted once, "
        "the file's op statistics in full"),
    "skipped_file": lambda n: f"skipped {n['reason']}",
    "run_metadata_malformed": lambda n: (
        f"the trace's run metadata (mfu_analyzer) is not what our runs write, and was ignored ({n['error']})"),
    # the peak, the bandwidth and F_model
    "no_matmul_dtype": lambda n: "the trace records no matmul input types: P_run assumes float32 matmuls",
    "recorded_peak_malformed": lambda n: "the trace's recorded peak is malformed and was ignored",
    "cpu_peak_measured_here": lambda n: (
        "CPU trace without a recorded peak: the peak was measured on this machine; pass --peak-flops if the trace was "
        "recorded elsewhere"),
    "no_peak_for_device": lambda n: f"no peak known for device {n['device']}: MFU is null (pass --peak-flops)",
    "no_device_named": lambda n: (
        "the trace names no device (no deviceProperties): MFU is null (pass --peak-flops)"),
    "tf32_assumed_off": lambda n: (
        "float32 matmuls are taken to run without TF32: a trace does not record whether TF32 was on"),
    "tf32_on": lambda n: (
        f"float32 matmuls ran at {n['rate_tflops_per_s']:.3g} TFLOP/s, above the {n['float32_tflops_per_s']:.3g} "
        f"TFLOP/s float32 peak: TF32 was on, and P_run is the TF32 peak ({n['tf32_tflops_per_s']:.3g} TFLOP/s)"),
    "measured_peak_raised": lambda n: (
        f"the run's matmuls ran at {n['rate_tflops_per_s']:.3g} TFLOP/s, faster than the "
        f"{n['measured_tflops_per_s']:.3g} TFLOP/s measured for {n['dtype']} before it (the machine was busy while it "
        f"measured): P and P_run are raised {n['scale']:.2f}x, to what the run achieved, and so matmul_efficiency "
        "is 0"),
    "raise_refused": lambda n: (
        f"the run's matmuls would have run at {n['rate_tflops_per_s']:.3g} TFLOP/s in {n['dtype']}, past this "
        f"CPU's instruction-set reference ({n['ceiling_tflops_per_s']:.3g} TFLOP/s with its slack): the FLOPs per "
        "step are too high, so the measured peak is kept and this machine's cache learns nothing"),
    "cpu_bandwidth_measured_here": lambda n: (
        "CPU trace without a recorded memory bandwidth: the roofline's memory ceiling was measured on this machine; "
        "pass --peak-bandwidth if the trace was recorded elsewhere"),
    "no_bandwidth_for_device": lambda n: (
        f"no memory bandwidth known for device {n['device'] or '(unnamed)'}: the ops get no roofline "
        "(pass --peak-bandwidth)"),
    "model_no_embedding": lambda n: (
        "--model: no aten::embedding on a [vocab_size, n_embd] table in the steps to count the tokens by (pass "
        "tokens_per_step): F_counted stands in for F_model"),
    "model_flops_unknown": lambda n: (
        "model FLOPs unknown (no run metadata, no --flops-per-step or --model, no counted forward): F_counted "
        "stands in for F_model"),
    "model_flops_counted": lambda n: (
        f"model FLOPs not given (no run metadata, --flops-per-step or --model): {n['how']} stand in, "
        f"{n['gflops']:.3g} GFLOP/step, so that recomputation and the optimizer's matmuls do not pass for the "
        "model's; pass --model (a config.json) or --flops-per-step to use the model's own count"),
    "model_flops_contradicted": lambda n: (
        f"the model FLOPs given ({n['given_from']}: {n['given_gflops']:.3g} GFLOP/step) are {n['ratio']:.2f}× every "
        f"FLOP the trace ran ({n['executed_gflops']:.3g} GFLOP/step, its matmuls all counted), which no model can "
        f"do: trusting the counts, {n['used_from']} ({n['used_gflops']:.3g} GFLOP/step) stand in. A count this "
        "far above usually takes the sequence length from a cap (max_position_embeddings) instead of the one "
        "trained, counts every expert of a sparse MoE, or counts embedding lookups as matmuls"),
    # the ledger
    "first_step_warmup": lambda n: (
        f"step {n['step']} took {n['ms']:.2f} ms, {n['ratio']:.0f}x the median of the others ({n['median_ms']:.2f} "
        "ms): most likely warm-up (first allocations, cuDNN / MIOpen algorithm search, compilation); the figures "
        "average over all steps, per_step has each"),
    "flops_gap": lambda n: (
        f"the model's forward and backward as counted are {n['ratio']:.2f}× the analytic model FLOPs (every counted "
        f"FLOP: {n['executed_ratio']:.2f}×, with {n['recomputed_gflops']:.3g} GFLOP/step recomputed and "
        f"{n['outside_gflops']:.3g} in the optimizer): the analytic formula counts the full T×T attention and all "
        "non-embedding parameters, the counted ones miss ops without recorded shapes; the headline keeps the "
        "analytic figure, which no count contradicts (a foreign model's formula may differ)"),
    "uncounted_matmul": _uncounted_matmul,
    "no_memory_events": lambda n: (
        "the trace records no memory of the device: record with torch.profiler.profile(profile_memory=True) to "
        "know whether a larger batch fits"),
    "memory_capacity_of_this_machine": lambda n: (
        "CPU trace without a recorded memory capacity: this machine's memory was taken; pass --memory-capacity if "
        "the trace was recorded elsewhere"),
    "no_op_bytes": lambda n: (
        "no op's bytes are known (the trace records no input shapes with their dtypes): the ops get no roofline, and "
        "non_fused's what-if is all of its time"),
    "profiler_cost": lambda n: (
        f"the profiler's own cost, {n['ms_per_step']:.2f} ms/step ({n['ops_per_step']:,.0f} ops recorded per step x "
        f"{n['us_per_op']:.2f} us, measured before the run), is taken out of the step time and small_batch: MFU and "
        "the ledger describe the step unprofiled"),
    "flops_beyond_matmul_time": lambda n: (
        f"the FLOPs per step need {n['ideal_ms']:.2f} ms at P, more than the {n['matmul_ms']:.2f} ms the matmuls "
        + (f"took and the {n['unrecorded_ms']:.2f} ms of device work the trace lost" if "unrecorded_ms" in n
           else "took") + ": the other causes give up the difference in proportion (the FLOPs count more than ran, "
        "or P is low)"),
    "precision_capped": lambda n: (
        f"the matmuls took less time than the FLOPs need at P_run ({n['dtype']}): precision is capped at the matmul "
        "time beyond the FLOPs at P (the matmuls may have run in a faster precision than recorded, or F_model counts "
        "more than ran)"),
    "steps_spread": lambda n: (
        f"the analysed steps ranged {n['min_ms']:.2f}-{n['max_ms']:.2f} ms (coefficient of variation "
        f"{n['cv_pct']:.0f}%: another job on the machine, throttling, or warm-up): the causes' order could change, "
        f"{n['first']} ranging "
        f"{n['first_low']:.1f}-{n['first_high']:.1f} points over the steps and {n['second']} {n['second_low']:.1f}-"
        f"{n['second_high']:.1f}; profile again on a quiet machine or more steps"),
    "time_ledger": lambda n: (
        f"{WHY_NO_MFU[n['why']](n)}: the ledger is in points of step time (100 = the {n['step_ms']:.2f} ms step), each "
        "what-if a step time and a speed-up; matmul_efficiency needs FLOPs and a peak and is left out"),
    "non_finite_figures": lambda n: (
        f"{n['count']} figure(s) came out not finite (NaN or infinite) and are null in the JSON: "
        + ", ".join(n["figures"]) + "; please report it with the trace"),
    "inconsistent_report": lambda n: (
        f"the report failed its own consistency checks ({'; '.join(n['broken'])}): MFU, the ledger and the diagnosis "
        "are left empty; please report it with the trace"),
}


# what a trace records besides the ops' times: what its absence costs the analysis, and the argument of
# torch.profiler.profile(...) that records it (analysis/health.py's Recorded, field by field)
LACKS = {
    "shapes": ("input shapes", "no FLOPs counted, no op bytes or rooflines", "record_shapes=True"),
    "dtypes": ("the inputs' dtypes", "the matmuls' precision is assumed", "record_shapes=True on torch 1.10 or later"),
    "memory": ("memory", "no memory plan or batch headroom", "profile_memory=True"),
    "stacks": ("Python stacks", "Python between ops and data preparation not told apart", "with_stack=True"),
    "device_events": ("device events", "no device time: the breakdown is the host's",
                      "activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]"),
    "step_markers": ("step markers", "steps are guessed from the optimizer or the DataLoader",
                     "schedule=torch.profiler.schedule(...) with prof.step() each iteration"),
}
# the warnings that say what a trace lost: the health section states them first
LOST = ("file_cut_short", "buffer_full", "kernels_not_recorded", "graph_replays", "device_events_outside_host")


def lacks(recorded: dict[str, bool]) -> list[dict[str, str]]:
    """What each part the trace lacks costs, and what records it (dtypes only where shapes are there to have
    them)."""
    missing = [k for k, held in recorded.items() if not held and not (k == "dtypes" and not recorded["shapes"])]
    return [dict(zip(("what", "costs", "record_with"), LACKS[k])) for k in missing]


def note_text(note: Note) -> str:
    """The warning's sentence; in a job of several ranks it names the ranks that gave it."""
    text = NOTES[note.code](note.numbers)
    if not note.ranks:
        return text
    return f"{'all ranks' if note.ranks == 'all' else 'rank ' + note.ranks}: {text}"


def note_data(note: Note) -> dict:
    """The warning as the JSON's `warnings_data` holds it."""
    return {"code": note.code, "numbers": note.numbers, **({"ranks": note.ranks} if note.ranks else {})}
