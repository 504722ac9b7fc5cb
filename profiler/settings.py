"""Every threshold that shapes the breakdown, the ledger and the diagnosis, in one place, each with why it has
its value. The ones a user may reasonably change are Options fields, as Holistic Trace Analysis exposes its
consecutive_kernel_delay; the rest are constants of the method.
"""

from dataclasses import dataclass

# --- units ---
# the trace's times are µs; the analysis keeps them so (its records' `_us` fields); the MFU stage computes in
# seconds, read from those records through analysis/records.py alone; reports show ms per step
US_PER_S = 1e6
MS_PER_S = 1e3
US_PER_MS = 1e3
TERA = 1e12  # FLOP/s as the reports write them (TFLOP/s)
GIGA = 1e9  # bytes per second (GB/s)
MEGA = 1e6  # bytes per step (MB), FLOPs per op (MFLOP)
KILO = 1e3  # a memory size's kB

# --- steps ---
# a last step that launched under this share of the device events of the step before was cut short by the
# profiler before its kernels ran (torch-tb-profiler's rule, kept so that step times compare like with like)
LAST_STEP_DEVICE_SHARE = 0.8
# a first step this many times the median of the others is warm-up (allocations, algorithm search, compiling)
WARMUP_RATIO = 3.0
# analysed steps whose times vary more than this (standard deviation over the mean) are noisy enough that two
# causes whose per-step ranges overlap could trade places: the report warns
WIDE_STEP_CV = 0.10

# --- one-off costs (warmup) ---
# a runtime call (kernel launch, function attributes, module load) or a library op's first call that holds the
# host this long while the device idles is set-up, not steady state: a launch takes microseconds, lazy loading of
# a module's kernels or cuDNN's heuristics take tens of ms
WARMUP_CALL_US = 1000.0
# a collective kernel this many times the median of the others stands out as a one-off (communicator set-up on
# first use) or a late rank: its evidence says so
ONE_OFF_COLLECTIVE = 10.0

# --- breakdown ---
# device idle stretches shorter than this between ops are per-op overhead (Python between ops, launch
# latency), which a larger batch spreads over more work; longer ones are stalls of another kind
SHORT_GAP_US = 1000.0

# --- the ledger's moves between causes (signals) ---
# a matmul with a dimension below this runs far below a device's large-matmul rate: tensor-core tiles are
# 64 to 256 wide, and a CPU's GEMM kernels block by about as much
SMALL_DIM = 64
# small_batch's fix: the micro-batch this many times larger, the one our runs time before training
# (step_ms_by_batch) so that its prediction is measured; 4x moves a small batch well into the matmuls' fast range
# while staying a change one makes in one go
BATCH_FACTOR = 4
# an op on this few elements does next to no work (16 KB of float32): its whole duration is fixed cost
TINY_NUMEL = 4096
# how many tiny ops it takes to trust their median as a near-empty op's cost; with fewer, the 10th percentile
# of all the ops' durations stands in
MIN_TINY_OPS = 5
FLOOR_PERCENTILE = 10

# --- timing a change of precision at the trace's shapes (mfu/shapetime.py) ---
# each distinct shape is timed this many times after a warm-up, the fastest kept: load slows some calls, rarely all
SHAPE_TIMING_REPEATS = 3
# the whole replay stops after this long (the largest shapes first): the rest get the replayed ones' saving
SHAPE_TIMING_BUDGET_S = 3.0
# a precision this many times slower than float32 at a shape is emulated here (bfloat16 on a CPU without
# AVX-512-BF16 or AMX, about 100x): it is not timed again at the other shapes
SLOW_DTYPE_RATIO = 10.0

# --- diagnosis ---
# a cause is a bottleneck from this many points of MFU: a fix for less is not worth a change of setup
MIN_POINTS = 1.0
# optimizer ops (CPU) or kernels (GPU) per step above which, with no _foreach_ or _fused_ op, the optimizer
# loops over parameters one by one (a fused AdamW runs a handful)
LOOP_OPS = 50
# a part of a cause's time (allocator calls, syncs) is its headline when it makes at least this share of it
HEADLINE_SHARE = 0.5
# Python frames are worth naming in small_batch's evidence from this share of its time
PYTHON_SHARE = 0.1

# --- ranks ---
# a rank whose busy time (step minus exposed communication) exceeds the others' median by this fraction
# is a straggler: below it, ranks differ by noise
STRAGGLER_THRESHOLD = 0.10

# --- a CPU's peak (mfu/cpupeak.py) ---
# no measured or learned rate may exceed the instruction-set reference (cores x the highest clock the kernel states,
# turbo included, x FLOP per cycle with two FMA units) by more than this: the clock read can be a VM's nominal one,
# which all-core turbo passes by 5-15%; a rate past it was formed with wrong FLOPs, not run
ISA_SLACK = 1.15

# --- plausibility of the inputs (consistency) ---
# counted matmuls may beat P_run by this much before the peak is implausible (timing noise, causal attention
# counted in full)
RATE_SLACK = 1.25
# the model's FLOPs at P may need this much more than the matmul time before F_model or P is wrong
MATMUL_SLACK = 1.05
# the model's counted forward and backward and F_model differing by more than this get the note that gives the
# account; and a given F_model more than this above every FLOP that ran (its matmuls counted) is contradicted by
# the counts, which then stand in. Norm and bias parameters sit in N with no matmul (well under 1% of a model's
# FLOPs), and the counts are exact where shapes are recorded: 5% leaves room for neither to matter
FLOPS_GAP = 0.05
# matmul time without a FLOP count is worth a warning from this share of the matmul time
UNCOUNTED_MATMUL_SHARE = 0.05
# and from this share, with F_model unknown, the MFU ledger would charge the uncounted time to
# matmul_efficiency (an artifact of the missing FLOPs): the time ledger stands instead
MOSTLY_UNCOUNTED = 0.5
# host and device clocks disagree when more than this share of device events start before their launch
CLOCK_SKEW_SHARE = 0.05

# --- presentation ---
TOP_OPS = 15  # ops listed in a report
MEMORY_CURVE_POINTS = 300  # the median step's memory over time, each point the highest level in its slice
LEDGER_ROW_MIN_POINTS = 0.005  # ledger rows below this (they round to 0.00) are not drawn
# the report's table of ops by name and input shapes, and of kernels by name, that a diff matches: the longest
# this many (a diff lists a row missing from a cut table as new or removed only when it would have been kept)
OPS_IN_REPORT = 200
SHAPE_TEXT_CHARS = 120  # an op's input shapes as the diff names them, cut at this length


# --- diff (profiler/diff) ---
DIFF_LEVEL = 0.95  # the confidence level of every interval and verdict
# a run's mean step is off from the next same-config run's by more than its own steps' spread says: the load on a
# shared machine comes and goes over seconds, and one run sits in it whole. The diff adds this relative standard
# deviation per run to the step time's interval (--run-noise sets it). A CPU's: scripts/bench_diff.py's pairs of
# default-config runs on this 2-core machine class (2026-12-03) differed by a robust standard deviation of 15% and
# 12% (log B/A, 20 pairs each): 9% per run. A GPU's is left at 0 (its steps alone), as no GPU was measured: two
# runs of one commit there give it
RUN_NOISE = {"cpu": 0.09}
DIFF_RESAMPLES = 2000  # bootstrap resamples of each side's steps (seeded: the same inputs give the same intervals)


# --- memory ---
# the share of a device's memory a batch may plan to fill: the CUDA context takes 0.3-0.5 GB before any tensor,
# and the caching allocator rounds blocks up (to 512 B, and 2 MB segments for large ones) and fragments, so a
# plan that fills 100% fails before it gets there
MEMORY_USABLE = 0.9


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the user says about a trace, and the thresholds a user may change."""

    peak_flops: float = 0.0  # the device's peak FLOP/s (P and P_run)
    flops_per_step: float = 0.0  # analytic model FLOPs per step of a foreign trace
    model: dict | None = None  # or a nanoGPT GPT's shape (inputs.model_flops)
    short_gap_us: float = SHORT_GAP_US
    min_points: float = MIN_POINTS
    straggler_threshold: float = STRAGGLER_THRESHOLD
    jobs: int = 1  # worker processes for the files of a folder (the CLI uses every core)
    progress: bool = False  # a progress bar on a terminal's stderr when a folder takes over a second
    peak_bandwidth: float = 0.0  # the device's memory bandwidth, bytes/s (the roofline's memory ceiling)
    scheduler: str | None = None  # a Dask scheduler's address: the files are analysed on that cluster
    peak_flops_run: float = 0.0  # with peak_flops: the peak in the run's matmul dtype (P_run), else P_run = P
    measure: bool = True  # time the trace's matmul shapes here, where it was recorded here (mfu/shapetime.py)
    memory_capacity: float = 0.0  # the device's memory in bytes, over what the trace or the device table says
