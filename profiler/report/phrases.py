"""The English of the diagnosis: each cause's evidence sentence, written from its facts and from nothing else.

The rules (mfu/diagnosis.py) measure; this module words. A number in a sentence is a fact's value in the format
shown here, so the wording can change without a numeric review, and a script reads the same numbers from
`bottlenecks[].facts`.
"""

import re

from profiler.facts import Facts

PYTHON_FRAME = re.compile(r"\.py\(\d+\)")


def short_name(name: str, width: int = 70) -> str:
    """A kernel's name without 'void ' and its parameter list, its template arguments cut to fit `width`; a
    plain name (an op, a triton kernel) as it is."""
    if PYTHON_FRAME.search(name):  # 'file.py(129): preprocess' is a name, not a parameter list
        return name
    name = name.removeprefix("void ")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the parameter list starts at the first '(' outside template brackets
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0 and i and name[i - 1] != " ":  # 'f (dynamo_timed)' keeps its note
            cut = i
            break
    name = name[:cut]
    return name if len(name) <= width or "<" not in name else name[:width - 3] + "..."


def evidence(cause: str, facts: Facts) -> str:
    """The evidence sentence of a bottleneck; a job's names the rank it comes from and, for communication, the
    ranks the others wait for."""
    text = EVIDENCE[cause](facts)
    if "rank" in facts:
        text = f"rank {facts['rank']}: {text}"
    if facts.get("waited_for"):
        text += "; the others wait for " + ", ".join(
            f"rank {s['rank']} (+{s['excess_ms']:.2f} ms busy, mostly {s['category']})" for s in facts["waited_for"])
    return text


def _share(f: Facts, name: str = "") -> str:
    ms, pct = (f[f"{name}_ms"], f[f"{name}_pct"]) if name else (f["ms"], f["share_pct"])
    return f"{ms:.2f} ms/step ({pct:.1f}% of the step)"


def _largest(items: list[dict]) -> str:
    return ", ".join(f"{short_name(i['name'])} {i['ms']:.2f} ms" for i in items)


def _on_roofline(items: list[dict]) -> str:
    return ", ".join(f"{i['name']} {i['ms']:.2f} ms ({i['of_roofline_pct']:.0f}% of its {i['bound']} roofline)"
                     for i in items)


def _stalls(f: Facts) -> str:
    calls = ", ".join(f"{c['per_step']:,.0f} {c['name']}" for c in f["stall_calls"])
    sites = ", ".join(f"{s['name']} ({s['per_step']:,.0f})" for s in f["stall_sites"])
    return f"{calls or 'none recorded'} per step" + (f", made in {sites}" if sites else "")


LOADERS = {"SingleProcess": "single-process (num_workers=0)", "MultiProcessing": "worker processes"}


def io(f: Facts) -> str:
    kinds = ", ".join(next((said for k, said in LOADERS.items() if k in name), name) for name in f["dataloaders"])
    setting = (f"; the run used num_workers={f['num_workers']}, pin_memory={f['pin_memory']}"
               if "num_workers" in f else "")
    waiting = "the device idles" if f["kind"] != "cpu" else "the training thread waits"
    text = (f"{waiting} in data loading {_share(f)}; DataLoader: "
            f"{kinds or 'no DataLoader spans (data-loading annotations)'}{setting}")
    if f.get("data_preparation"):
        text += f"; data preparation in Python inside the step (largest frames, per step): " \
                f"{_largest(f['data_preparation'])}"
    return text


def small_batch(f: Facts) -> str:
    parts = [f"host dispatch/launch overhead {f['host_overhead_ms']:.2f} ms/step",
             f"short idle gaps between ops {f['short_idle_ms']:.2f} ms/step",
             f"fixed per-op cost of compute and copy ops {f['fixed_ms']:.2f} ms/step (each op charged a near-empty "
             "op's duration)",
             f"work done once per step on parameters (optimizer, gradient clipping, weight casts) "
             f"{f['parameter_ms']:.2f} ms/step",
             f"{f['ops_per_step']:,.0f} ops per step"
             + (f", {f['mflop_per_op']:.2f} MFLOP per op" if "mflop_per_op" in f else "")]
    if not f["host_recorded"]:
        parts.insert(0, "the host was not recorded (a device-only trace): the device's short gaps between kernels "
                        "are most likely launch overhead, though a trace of the host would have to show it")
    if "kernels_per_step" in f:
        parts.append(f"{f['kernels_per_step']:,.0f} kernels per step, median {f['median_kernel_us']:.1f} µs")
    if "graph_launches_per_step" in f:
        parts.append(f"{f['graph_launches_per_step']:,.1f} CUDA graph launches per step: the rest is launched op by op")
    if "small_matmul_ms" in f:
        of_peak = (f" ({f['small_matmul_of_peak_run_pct']:.0f}% of P_run)"
                   if "small_matmul_of_peak_run_pct" in f else "")
        parts.append(f"matmuls with a dimension < {f['small_dim']}: {f['small_matmul_ms']:.2f} ms/step at "
                     f"{f['small_matmul_tflop_per_s']:.3f} TFLOP/s{of_peak}")
    if "python_ms" in f:
        parts.append(f"Python frames between ops {f['python_ms']:.2f} ms/step with the device idle")
    if "profiler_ms" in f:
        parts.append(f"less the profiler's own recording cost, {f['profiler_ms']:.2f} ms/step, taken out")
    if "memory_bound_matmul_count" in f:
        parts.append(f"{f['memory_bound_matmul_count']} matmul op(s) memory-bound at these shapes "
                     f"({f['memory_bound_matmul_ms']:.2f} ms/step of {f['placed_matmul_ms']:.2f}): "
                     + ", ".join(f"{m['name']} {m['flop_per_byte']:.0f} FLOP/byte"
                                 for m in f["memory_bound_intensity"]))
    if "measured_batch_speedup" in f:
        at = (f"{f['measured_micro_step_ms']:.2f} ms at {f['measured_batch_size']}, so about "
              f"{f['larger_batch_micro_step_ms']:.2f} ms at {f['larger_batch_size']}" if "measured_batch_size" in f
              else f"{f['larger_batch_micro_step_ms']:.2f} ms at {f['larger_batch_size']}")
        parts.append(f"measured before the run, a micro-step's forward and backward took "
                     f"{f['batch_micro_step_ms']:.2f} ms at batch {f['batch_size']} and {at}: {f['batch_factor']}x the "
                     f"tokens add {f['batch_added_ms']:.2f} ms to the {f['step_ms']:.2f} ms step"
                     + grows_with_samples(f)
                     + f", x{f['measured_batch_speedup']:.2f} tokens/s")
    if "fit_factor" in f:
        parts.append(memory_plan(f))
    return "; ".join(parts)


def memory_plan(f: Facts) -> str:
    """Which batch the device's memory holds, or what frees memory where not even twice the batch fits."""
    unit = f["memory_unit"]
    of = (f"of {f['memory_capacity']:.2f} {unit} ({f['memory_capacity_source']}, {f['memory_usable_pct']:.0f}% of it "
          "planned)")
    how = ("from the micro-steps measured before the run" if f["fit_by"] == "micro_steps"
           else "the trace's transient taken as linear in the batch")
    if f["fit_factor"] >= 2:
        batch = f"batch {f['fit_batch_size']}" if "fit_batch_size" in f else f"{f['fit_factor']}x the batch"
        return f"the memory holds {batch}: {f['fit_peak']:.2f} {unit} predicted {of}, {how}"
    ways = "; ".join(f"{a['name']} frees {a['frees']:.2f} {unit} and costs {a['costs']}"
                     + (f" ({a['costs_ms']:.2f} ms/step)" if "costs_ms" in a else "") for a in f["alternatives"])
    return f"twice the batch does not fit: {f['double_peak']:.2f} {unit} predicted {of}, {how}; {ways}"


def grows_with_samples(f: Facts) -> str:
    """The part of a larger batch's added time that the micro-steps leave out: loading and copying the batch."""
    grown = (("batch_loading_added_ms", "data loading"), ("batch_copies_added_ms", "copying the batch to the device"))
    parts = [f"{f[key]:.2f} ms of it {what}" for key, what in grown if f.get(key)]
    return f" ({' and '.join(parts)}, which grow{'s' if len(parts) == 1 else ''} with the samples)" if parts else ""


def elementwise_traffic(f: Facts) -> str:
    if not f["elementwise_bytes_known"]:
        return "their bytes are unknown (no recorded shapes): the what-if is all of their time, an upper bound"
    ceiling = (f", {f['elementwise_of_bandwidth_pct']:.0f}% of the memory ceiling"
               if "elementwise_of_bandwidth_pct" in f else "")
    text = (f"they move {f['elementwise_mb_per_step']:,.1f} MB/step at {f['elementwise_gb_per_s']:,.1f} GB/s{ceiling}; "
            f"{f['fusable_pct']:.0f}% of it is intermediates one op writes and the next reads, which fusion removes: "
            f"the what-if counts {f['removable_ms']:.2f} ms of this cause")
    if f.get("largest_elementwise"):
        text += "; largest: " + _on_roofline(f["largest_elementwise"])
    return text


def optimizer_seen(f: Facts) -> str:
    o = f["optimizer"]
    if f["optimizer_seen"] == "foreach":
        return f"foreach {o}: {f['foreach_ops_per_step']:.0f} _foreach_ ops per {o}.step"
    largest = ", ".join(f"{i['per_step']:.0f} {i['name']}" for i in f["optimizer_ops"])
    return (f"per-parameter {o} loop: {f['optimizer_work_per_step']:.0f} {f['optimizer_work_unit']} per {o}.step "
            f"(ops: {largest}), no _foreach_ or _fused_ ops inside it")


def non_fused(f: Facts) -> str:
    parts = [f"elementwise / norm / softmax / optimizer time {_share(f)}, of which "
             f"{f['optimizer_dispatch_ms']:.2f} ms dispatching the optimizer's ops"]
    if "ops_per_layer" in f:
        parts.append(f"{f['ops_per_layer']:.0f} such ops per layer per step")
    parts.append(elementwise_traffic(f))
    if f.get("unfused_attention"):
        parts.append(f"unfused attention: {f['softmax_per_step']:.0f} softmax and {f['bmm_per_step']:.0f} bmm ops "
                     "per step, no scaled_dot_product_attention")
    if "optimizer_seen" in f:
        parts.append(optimizer_seen(f))
    if "compiled_regions_per_step" in f:
        parts.append(f"already compiled: {f['compiled_regions_per_step']:.0f} torch.compile region(s) per step, whose "
                     "generated kernels are part of this time")
    if "measured_fix_speedup" in f:
        said = []
        if "attention_micro_step_ms" in f:
            said.append(f"a micro-step's forward and backward {f['attention_micro_step_ms']:.2f} ms with "
                        f"{f['attention']} attention, {f['sdpa_micro_step_ms']:.2f} ms with SDPA")
        if "optimizer_step_ms" in f:
            said.append(f"an optimizer step {f['optimizer_step_ms']:.2f} ms {f['optimizer_impl']}, "
                        f"{f['fused_optimizer_step_ms']:.2f} ms fused")
        parts.append(f"measured before the run at its shapes, {'; '.join(said)}: the fix takes "
                     f"{f['fix_saved_ms']:.2f} ms from the {f['step_ms']:.2f} ms step, "
                     f"x{f['measured_fix_speedup']:.2f}")
    return "; ".join(parts)


def copy_links(f: Facts) -> str:
    parts = [f"{c['kind']} {c['gb_per_s']:,.1f} GB/s" + (f", {c['of_link_pct']:.0f}% of {c['link']}"
                                                        if "link" in c else "") for c in f.get("copy_links", [])]
    return ("copies crossed at " + "; ".join(parts)) if parts else ""


def memory_ops(f: Facts) -> str:
    text = f"copies and memsets {_share(f)}"
    if f["kind"] == "cpu":
        ops = f["memory_ops"]
        text += (f"; {f['copied_mb']:.1f} MB per step copied" + (
            ", largest: " + ", ".join(f"{op['per_step']:,.0f} {op['name']} per step ({op['ms']:.2f} ms)" for op in ops)
            if ops else ""))
    else:
        kinds = ", ".join(f"{k['kind']} {k['mb']:.1f} MB" for k in f["memcpy_kinds"])
        text += f"; {f['copied_mb']:.1f} MB per step" + (f" ({kinds})" if kinds else "")
    if "allocator_ms" in f:
        text = f"allocator calls with the device idle {_share(f, 'allocator')}: {_stalls(f)}; " + text
    links = copy_links(f)
    return text + (f"; {links}" if links else "")


def communication(f: Facts) -> str:
    comm = ", ".join(f"{short_name(c['name'])} {c['ms']:.2f} ms" for c in f["collectives"])
    text = f"collectives not overlapped by compute {_share(f)}" + (f"; {comm}" if comm else "")
    if f.get("parallelism"):
        text += "; parallelism: " + ", ".join(f["parallelism"])
    if f.get("exposed_collectives"):
        text += f"; most exposed, in a group of {f['group_size']} ranks: " + ", ".join(
            f"{c['name']} {c['ms']:.2f} ms ({c['calls']:.0f} calls, {c['mb']:.2f} MB"
            + (f", bus {c['bus_gb_per_s']:.2f} GB/s" if c["bus_gb_per_s"] else "") + ")"
            for c in f["exposed_collectives"])
        if "link" in f:
            text += f"; the best reaches {f['best_bus_of_link_pct']:.0f}% of the link ({f['link']})"
        if f.get("backend") == "gloo":
            text += " (gloo: the ranks exchange through host memory, no link to compare with)"
    if f.get("exposed_by_rank"):
        text += "; exposed per rank: " + ", ".join(f"rank {r['rank']} {r['ms']:.2f} ms ({r['pct']:.0f}%)"
                                                   for r in f["exposed_by_rank"])
    if "bubble_pct" in f:
        text += (f"; pipeline of {f['stages']} stages over {f['micro_batches']:.0f} micro-batches a step: the "
                 f"schedule's bubble, (p − 1) / (m + p − 1), is {f['bubble_pct']:.0f}% of the step, "
                 f"{f['bubble_at_twice_pct']:.0f}% at twice the micro-batches"
                 + ("; each stage's exposed send / recv above is its measured bubble and transfers"
                    if f.get("exposed_by_rank") else ""))
    if f.get("all_gathers_by_module"):
        text += "; FSDP's longest all-gathers, by module: " + ", ".join(
            f"{m['name']} {m['ms']:.2f} ms" for m in f["all_gathers_by_module"])
    if "first_all_gather" in f:
        text += (f"; FSDP's first all-gather ({f['first_all_gather']}, {f['first_all_gather_ms']:.2f} ms) has nothing "
                 "before it to hide behind")
    if "slowest_collective_ms" in f:
        text += (f"; one collective kernel took {f['slowest_collective_ms']:.2f} ms, {f['slowest_over_median']:.0f}x "
                 f"the median of the other {f['other_collectives']} ({f['median_collective_ms']:.2f} ms): most likely "
                 "a one-off (communicator or connection set-up on first use), or a rank that arrived late")
    return text


def precision_measurement(f: Facts) -> str:
    if f["measured_by"] == "micro_step":
        return (f"measured before the run at its shapes, a micro-step's forward and backward took "
                f"{f['micro_step_ms']:.2f} ms in {f['run_dtype']} and {f['target_micro_step_ms']:.2f} ms in "
                f"{f['target_dtype']}, which sets this cause's points")
    if f["measured_by"] == "shape_timing":
        times = " and ".join(f"{t['ms']:.2f} ms/step in {t['dtype']}" for t in f["timed_ms_by_dtype"])
        verdict = (f"{f['timed_fastest']} saves {f['timed_saving_pct']:.0f}% of it, which sets this cause's points"
                   if f["timed_fastest"] != f["timed_run_dtype"] else
                   f"no precision is faster than {f['timed_run_dtype']} at these shapes, so precision costs nothing "
                   "here")
        return (f"timed on this machine at the trace's own {f['timed_shapes']} matmul and attention shapes (with "
                f"autocast's casts of their inputs), the counted matmul time comes to {times}: {verdict}")
    return ("not measured at the run's shapes (the trace was recorded on another machine, or --no-measure): "
            "the points are the ceiling the two peaks give")


def precision(f: Facts) -> str:
    if "fp32_matmul_ms" in f:  # a time ledger: from the kernels' names
        return (f"float32 matmul and convolution kernels on the SIMT cores {f['fp32_matmul_ms']:.2f} ms/step "
                f"(largest: {_largest(f['fp32_kernels'])}); the device does {f['fp32_speed_pct']:.0f}% of its "
                f"fastest rate in float32, so they lose {f['fp32_lost_pct']:.0f}% of their time")
    return (f"matmuls ran in {f['dtype']}: the device's large GEMMs do {f['peak_run_tflop_per_s']:.3g} TFLOP/s in it "
            f"against {f['peak_tflop_per_s']:.3g} in {f['fastest_dtype'] or 'its fastest precision'}; the model's "
            f"FLOPs need {f['ms_at_peak_run']:.2f} ms/step at the first, {f['ms_at_peak']:.2f} at the second; "
            + precision_measurement(f))


def warmup(f: Facts) -> str:
    return (f"one-off costs inside the recorded window while the device idled {_share(f)}: {_largest(f['one_offs'])} "
            "(their own host time: compilation, lazy loading of kernels on their first launch, library set-up on a "
            "first call)")


def recomputation(f: Facts) -> str:
    ops = ", ".join(f"{o['name']} {o['ms']:.2f} ms" for o in f["recomputed_ops"])
    text = (f"forward ops run again inside the backward (activation checkpointing) {_share(f)}: "
            f"{f['recomputed_gflops']:.3g} GFLOP/step recomputed, {f['recomputed_of_model_pct']:.0f}% of the model's "
            f"FLOPs, in {ops}")
    if "predicted_gb" in f:
        verdict = "fits" if f["fits"] else "does not fit"
        text += (f"; without it the peak would hold {f['spared_gb']:.3g} GB more, {f['predicted_gb']:.2f} GB of "
                 f"{f['capacity_gb']:.2f}: it {verdict}")
    elif "spared_gb" in f:
        text += f"; without it about {f['spared_gb']:.3g} GB more activations would be kept"
    return text


def matmul_efficiency(f: Facts) -> str:
    text = (f"matmul time beyond what the FLOPs need at P ({f['peak_tflop_per_s']:.3g} TFLOP/s, "
            f"{f['fastest_dtype'] or 'the fastest precision'}) that precision ({f['precision_ms']:.2f} ms) and the "
            f"other causes do not take {_share(f)}")
    if "counted_tflop_per_s" in f:
        text += (f"; counted matmuls run at {f['counted_tflop_per_s']:.3g} TFLOP/s, "
                 f"{f['counted_of_peak_run_pct']:.0f}% of P_run ({f['peak_run_tflop_per_s']:.3g} TFLOP/s in "
                 f"{f['dtype']})")
    if f.get("precision_takes_none"):
        text += "; precision takes none of it: " + precision_measurement(f)
    if "alone_tflop_per_s" in f:
        text += (f"; timed alone on this machine, their shapes reach {f['alone_tflop_per_s']:.3g} TFLOP/s in "
                 f"{f['alone_dtype']} ({f['alone_of_peak_run_pct']:.0f}% of P_run): the rest of the gap to P_run is "
                 "the shapes themselves")
    if "uncounted_matmul_ms" in f:
        text += (f"; {f['uncounted_matmul_ms']:.2f} ms/step of the matmul time ran in ops whose FLOPs are not "
                 "counted, so part of this is work F_counted leaves out")
    bounds = [f"{label}: {_on_roofline(f[key])}" for key, label in (
        ("memory_bound_matmuls", "memory-bound (too small for the peak: larger batches or fused shapes)"),
        ("compute_bound_matmuls", "compute-bound, below P_run")) if key in f]
    return text + ("; " + "; ".join(bounds) if bounds else "")


def unrecorded(f: Facts) -> str:
    lost = [f"{f[key]:.1f} {what}" for key, what in (("lost_kernels_per_step", "kernel launches"),
                                                    ("lost_graphs_per_step", "CUDA graph launches")) if f[key]]
    return (f"device work the trace did not record {_share(f)}: {' and '.join(lost) or 'launches'} per step have no "
            "device event; the stretches where that work ran are counted here, not as idle")


def other(f: Facts) -> str:
    if "sync_ms" in f:
        return f"the host synchronizes with the device while it idles {_share(f, 'sync')}: {_stalls(f)}"
    return (f"idle stretches of {f['long_gap_ms']:g} ms or more with no op recorded {_share(f)}: "
            "synchronizations, Python outside ops, work the profiler did not record")


EVIDENCE = {"io": io, "small_batch": small_batch, "non_fused": non_fused, "memory_ops": memory_ops,
            "communication": communication, "recomputation": recomputation, "precision": precision,
            "matmul_efficiency": matmul_efficiency, "warmup": warmup, "unrecorded": unrecorded, "other": other}
