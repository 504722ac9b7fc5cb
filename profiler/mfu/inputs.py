"""What the attribution takes besides the trace: the device's peak and bandwidth, the model's FLOPs per step, and
where the trace was recorded here, its matmul shapes timed in each precision.

Each comes from the first source that has it, and says which: the user's word, our run's metadata, the device
table or a measurement on this machine (peak); --flops-per-step, --model or the run's metadata (F_model).
`resolve` gathers them for a rank, with the peak checked against what the trace did (consistency.py).
"""

from dataclasses import dataclass, replace

from profiler.analysis.records import RankAnalysis, Signals, seconds
from profiler.facts import Note
from profiler.mfu.bandwidth import Bandwidth, resolve_bandwidth
from profiler.mfu.consistency import disturbed_measurement, tf32_peak
from profiler.mfu.cpupeak import cpu_name, raise_cached, this_machine
from profiler.mfu.modelflops import ModelDescription, from_hf_config, gpt_params, nanogpt
from profiler.mfu.observed import compiled_regions
from profiler.mfu.peak import Peak, resolve_peak
from profiler.mfu.records import FlopAccount, ModelFlops
from profiler.mfu.shapetime import ShapeTiming, timed_shapes
from profiler.settings import FLOPS_GAP, GIGA, UNCOUNTED_MATMUL_SHARE, Options
from profiler.trace.classify import MATMUL
from profiler.trace.metadata import RunMetadata


def trace_peak(analysis: RankAnalysis, options: Options) -> tuple[Peak | None, list[Note]]:
    """The peak from the user, the run's own metadata, the device table, or (CPU) a measurement here; and
    warnings for what it had to assume."""
    warnings: list[Note] = []
    meta = analysis.metadata
    dtype = analysis.dtype
    device = analysis.device_names[0] if analysis.device_names else ""
    if options.peak_flops > 0:  # P, and P_run unless the user gave the run's dtype its own
        return resolve_peak(device, analysis.kind, dtype or "float32", user_peak=options.peak_flops,
                            user_peak_run=options.peak_flops_run), warnings
    if not dtype:
        dtype = "float32"
        warnings.append(Note("no_matmul_dtype"))
    if meta.peak is not None:
        try:
            return Peak(**meta.peak), warnings
        except TypeError:
            warnings.append(Note("recorded_peak_malformed"))
    if analysis.kind == "cpu":
        import torch

        warnings.append(Note("cpu_peak_measured_here"))
        return resolve_peak("", "cpu", dtype, threads=torch.get_num_threads()), warnings
    peak = resolve_peak(device, analysis.kind, dtype)
    if peak is None and device:
        warnings.append(Note("no_peak_for_device", {"device": device}))
    elif peak is None:
        warnings.append(Note("no_device_named"))
    return peak, warnings


def trace_bandwidth(analysis: RankAnalysis, options: Options) -> tuple[Bandwidth | None, list[Note]]:
    """The memory ceiling from the user, the run's metadata, the device table, or (CPU) a measurement here."""
    if options.peak_bandwidth > 0:
        return resolve_bandwidth("", analysis.kind, user=options.peak_bandwidth), []
    if analysis.metadata.bandwidth is not None:
        try:
            return Bandwidth(**analysis.metadata.bandwidth), []
        except TypeError:
            pass
    device = analysis.device_names[0] if analysis.device_names else ""
    if analysis.kind == "cpu":
        import torch

        return resolve_bandwidth("", "cpu", torch.get_num_threads()), [Note("cpu_bandwidth_measured_here")]
    found = resolve_bandwidth(device, analysis.kind)
    if found is None:
        return None, [Note("no_bandwidth_for_device", {"device": device})]
    return found, []


def described_model(model: dict) -> tuple[ModelDescription, tuple[int, int]]:
    """--model as a description, and the shape of its token embedding (where the tokens can be counted): a
    Hugging Face config.json at its sequence length, or a nanoGPT GPT's n_layer, n_head, n_embd, block_size,
    vocab_size and bias."""
    if "config" in model:
        config = model["config"]
        width = config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
        return from_hf_config(config, model["sequence_length"], "--model config.json"), (config["vocab_size"], width)
    n_params = gpt_params(model["n_layer"], model["n_embd"], model["vocab_size"], model.get("bias", True))
    described = nanogpt(model["n_layer"], model["n_head"], model["n_embd"], model["block_size"], n_params, "--model")
    return described, (model["vocab_size"], model["n_embd"])


def model_flops(options: Options, meta: RunMetadata, signals: Signals) -> tuple[ModelFlops, list[Note]]:
    """F_model and where it came from: --flops-per-step, --model (a nanoGPT shape or a Hugging Face config.json,
    with tokens_per_step or else the tokens its token embedding looked up per step), or the run's metadata;
    unknown otherwise (the MFU stage then stands in three times the forward's counted FLOPs)."""
    warnings: list[Note] = []
    if options.flops_per_step:
        return ModelFlops(options.flops_per_step, "--flops-per-step"), warnings
    if options.model:
        described, embedding = described_model(options.model)
        tokens, how = options.model.get("tokens_per_step"), ""
        if not tokens:
            tokens = signals.per_step(signals.embedding_tokens[embedding])
            how = ", tokens per step counted at the token embedding"
        if not tokens:
            warnings.append(Note("model_no_embedding"))
            return ModelFlops(None, None), warnings
        return ModelFlops(described.flops_per_step(int(tokens)), described.formula() + how), warnings
    if meta.flops_per_step:
        how = f" ({meta.flops_from})" if meta.flops_from else ""
        return ModelFlops(float(meta.flops_per_step), "run metadata" + how), warnings
    return ModelFlops(None, None), warnings


def rank_model_flops(analysis: RankAnalysis, options: Options) -> tuple[ModelFlops, list[Note]]:
    """The rank's F_model as the report stands behind it, with its FLOP account; and the warnings they gave."""
    given, notes = model_flops(options, analysis.metadata, analysis.signals)
    account = FlopAccount.of(analysis.table, compiled=compiled_regions(analysis.signals) > 0)
    trusted, said = trusted_model_flops(given, account, analysis.signals,
                                        float(analysis.table.breakdown_us[MATMUL].sum()))
    return replace(trusted, account=account), notes + said


def trusted_model_flops(given: ModelFlops, account: FlopAccount, signals: Signals,
                        matmul_us: float) -> tuple[ModelFlops, list[Note]]:
    """F_model as the report can stand behind it. Where none was given, the counts stand in (FlopAccount.stand_in).
    Where the trace counts its matmuls (under UNCOUNTED_MATMUL_SHARE of their time without shapes, and no CUDA
    graph replayed ops its host did not record) and the F given is more than FLOPS_GAP above every FLOP that ran
    (and above three times the forward), the counts contradict it (a sequence length taken from a cap, all
    experts of a sparse MoE, embeddings counted as matmuls): they stand in, and a note says why. MFU then never
    exceeds HFU."""
    # a CUDA graph's ops ran with no host op to count them: its counts cannot contradict F
    counted_well = (signals.uncounted_matmul_total_us <= UNCOUNTED_MATMUL_SHARE * matmul_us
                    and not signals.graph_launches)
    stand_in = account.stand_in()
    if not given.per_step:
        if not stand_in.per_step:
            return given, [Note("model_flops_unknown")]
        return stand_in, [Note("model_flops_counted", {"gflops": stand_in.per_step / GIGA, "how": stand_in.source})]
    most = max(account.executed, stand_in.per_step or 0.0)  # a first layer's skipped input gradient runs no FLOP
    if counted_well and stand_in.per_step and given.per_step > (1 + FLOPS_GAP) * most:
        return stand_in, [Note("model_flops_contradicted", {
            "given_gflops": given.per_step / GIGA, "given_from": given.source or "", "ratio": given.per_step /
            account.executed, "executed_gflops": account.executed / GIGA, "used_gflops": stand_in.per_step / GIGA,
            "used_from": stand_in.source})]
    return given, []


def timeable_here(analysis: RankAnalysis, options: Options) -> bool:
    """Whether the trace was recorded on this machine, so that its shapes can be timed here: its run metadata
    says so, or it is a CPU trace without a recorded peak (whose peak is measured here already, with a warning);
    never where the user gave the peak (the trace is from elsewhere) or asked for no measurement."""
    if not options.measure or options.peak_flops > 0:
        return False
    if analysis.metadata.machine:
        return analysis.metadata.machine == this_machine()
    return analysis.kind == "cpu" and not analysis.metadata.peak


def shape_timing(analysis: RankAnalysis, peak: Peak | None, options: Options) -> ShapeTiming | None:
    """The rank's counted matmul and attention shapes timed here in each precision the device offers, where
    the trace was recorded here and its own run did not measure a change of precision (our runs time whole
    micro-steps: step_ms_by_dtype)."""
    if not (peak and analysis.signals.matmul_calls and timeable_here(analysis, options)) \
            or analysis.metadata.step_ms_by_dtype:
        return None
    if analysis.kind != "cpu":
        import torch

        names = analysis.device_names
        if not (torch.cuda.is_available() and names and names[0] == torch.cuda.get_device_name()):
            return None
    signals = analysis.signals
    return timed_shapes(dict(signals.matmul_calls), dict(signals.matmul_call_us), signals.steps, peak.dtype,
                        "cpu" if analysis.kind == "cpu" else "cuda")


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """A rank's inputs besides its analysis, each from the first source that has it, and the warnings they gave
    (F_model's apart: they are the rank's own). `learned_rate`: where the run's own CPU peak, measured here,
    proved low, the rate its matmuls reached (what `learn_peak` writes into this machine's cache)."""

    peak: Peak | None
    bandwidth: Bandwidth | None
    f_model: ModelFlops
    f_model_notes: list[Note]
    timing: ShapeTiming | None
    notes: list[Note]
    learned_rate: float | None = None


def resolve(analysis: RankAnalysis, options: Options) -> Inputs:
    """The rank's peak (TF32 where float32 matmuls beat the float32 peak; a disturbed CPU measurement raised to
    what the run achieved), its bandwidth, F_model and, where recorded here, its shapes timed."""
    f_model, f_model_notes = rank_model_flops(analysis, options)
    peak, notes = trace_peak(analysis, options)
    rate = counted_rate(analysis)
    learned = None
    if peak:
        peak, note = tf32_peak(peak, rate, peak.device)
        notes += [note] if note else []
    if peak and analysis.metadata.peak:  # measured on the machine that ran it, before the run
        peak, note = disturbed_measurement(peak, achieved_rate(analysis, f_model.per_step, rate))
        notes += [note] if note else []
        trusted = not any(n.code == "model_flops_contradicted" for n in f_model_notes)
        raised = note is not None and note.code == "measured_peak_raised"
        learned = peak.peak_flops_run if raised and trusted and recorded_here(analysis.metadata) else None
    bandwidth, said = trace_bandwidth(analysis, options)
    return Inputs(peak=peak, bandwidth=bandwidth, f_model=f_model, f_model_notes=f_model_notes,
                  timing=shape_timing(analysis, peak, options), notes=notes + said, learned_rate=learned)


def learn_peak(inputs: Inputs, meta: RunMetadata) -> bool:
    """Write what a run measured here achieved into this machine's CPU-peak cache, where it beat the cached rate:
    the one place the analysis changes a file of the user's. True when the cache changed."""
    if inputs.learned_rate is None or inputs.peak is None or not meta.threads:
        return False
    return raise_cached(meta.threads, inputs.peak.dtype, inputs.learned_rate)


def counted_rate(analysis: RankAnalysis) -> float | None:
    """FLOP/s of the counted matmul, attention and convolution ops over the time they ran."""
    flops = float(analysis.table.flops.sum())
    return flops / seconds(analysis.signals.matmul_us) if analysis.signals.matmul_us and flops else None


def achieved_rate(analysis: RankAnalysis, f_model: float | None, counted: float | None) -> float | None:
    """The matmul rate the run achieved, as the ledger credits it: the FLOPs per step (F_model, else F_counted)
    over the step's matmul time, or the counted ops' own rate where higher. A peak raised to it leaves no
    negative matmul time in the ledger."""
    matmul_s = analysis.table.category_s()["matmul"]
    credited = (f_model or float(analysis.table.flops.mean())) / matmul_s if matmul_s > 0 else None
    return max(filter(None, (credited, counted)), default=None)


def recorded_here(meta: RunMetadata) -> bool:
    """Whether a trace's measured CPU peak was measured on this machine (its cache may then learn from it)."""
    peak = meta.peak or {}
    return peak.get("source") == "measured" and peak.get("device") == cpu_name() and bool(meta.threads)
