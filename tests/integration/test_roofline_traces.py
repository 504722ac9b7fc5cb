"""The roofline on small synthetic traces run through the whole pipeline: fusable intermediates, and an op's
calls against the kernels it launched."""

import pytest
from synth import kernel, launch, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import Options

F32 = "float"


def cpu_step(tmp_path, ops):
    """One CPU step of float32 ops, one after another: (name, inputs, shape, µs) each."""
    events, ts = [], 5
    for name, n_inputs, shape, us in ops:
        events.append(op(name, ts, us, **{"Input Dims": [shape] * n_inputs + [[]],
                                          "Input type": [F32] * n_inputs + ["Scalar"]}))
        ts += us
    return write(tmp_path / "chain.json", [step(1, 0, ts + 5)] + events, device=None)


def test_a_chain_of_elementwise_ops_has_fusable_intermediates(tmp_path):
    # mul(a, b) → add(t, c) → relu(t) on [1024, 1024]: each op after the first reads what the one before wrote;
    # a copy breaks the chain, and five tiny negations set the fixed per-op cost (2 µs) the ledger moves out
    x, tiny = [1024, 1024], [16, 16]
    path = cpu_step(tmp_path, [("aten::mul", 2, x, 100), ("aten::add", 2, x, 100), ("aten::relu", 1, x, 100),
                               ("aten::copy_", 2, tiny, 2)] + [("aten::neg", 1, tiny, 2)] * 5)
    report = analyze_path(path, Options(peak_flops=1e12, peak_bandwidth=1e11))  # no FLOPs: a time ledger
    mb, kb = 1024 * 1024 * 4, 16 * 16 * 4
    rows = {o["name"]: o for o in report["top_ops"]}
    assert rows["aten::mul"]["bytes"] == 3 * mb and rows["aten::relu"]["bytes"] == 2 * mb
    relu = rows["aten::relu"]["roofline"]  # 8 MiB in 100 µs: 84 GB/s of a 100 GB/s ceiling
    assert relu["achieved_tb_s"] == pytest.approx(2 * mb / 100e-6 / 1e12) and relu["bound"] == "memory"
    assert relu["of_roofline"] == pytest.approx(2 * mb / 1e11 / 100e-6)
    # the elementwise time less the fixed cost (10 µs of tiny ops, 2 µs of each large one) is non_fused
    entry = next(e for e in report["ledger"] if e["cause"] == "non_fused")
    assert entry["ms"] == pytest.approx(0.310 - 0.016)
    # moved: 3 + 3 + 2 units of 4 MiB and 5 x 2 KiB; intermediates: mul→add, add→relu (2 units each), and the
    # four pairs of negations: fusion removes that share of the kernel time
    share = (4 * mb + 4 * 2 * kb) / (8 * mb + 5 * 2 * kb)
    assert entry["what_if_step_ms"] == pytest.approx(report["step_time_ms"]["mean"] - share * 0.294)
    assert "50% of it is intermediates" in next(b["evidence"] for b in report["bottlenecks"]
                                                 if b["cause"] == "non_fused")


def test_an_op_counts_its_calls_not_the_kernels_and_memsets_it_launched(tmp_path):
    """A GEMM call that launches a memset and a kernel is one call: the count that was 2 per call."""
    shapes = {"Input Dims": [[64, 32], [32, 16]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}
    events = [step(1, 0, 1000)]
    for i, ts in enumerate((10, 400)):
        events += [op("aten::mm", ts, 40, **shapes), launch(ts + 5, 5, 2 * i + 1, "cudaMemsetAsync"),
                   launch(ts + 20, 5, 2 * i + 2),
                   kernel("Memset (Device)", ts + 50, 5, 2 * i + 1, cat="gpu_memset"),
                   kernel("nvjet_tst_128x256", ts + 60, 100, 2 * i + 2)]
    report = analyze_path(write(tmp_path / "mm.json", events), Options())
    mm = next(o for o in report["top_ops"] if o["name"] == "aten::mm")
    assert mm["count"] == 2 and mm["flops"] == 2 * 2 * 64 * 32 * 16
    assert mm["bytes"] == 2 * ((64 * 32 + 32 * 16) * 2 + 64 * 16 * 2)
    roof = mm["roofline"]  # H100's table: 3.35 TB/s; 2 x 13.3 KB in 2 x 105 µs
    assert roof["achieved_tb_s"] == pytest.approx(mm["bytes"] / 210e-6 / 1e12) and roof["bound"] == "memory"
    assert report["device"]["bandwidth"] == 3.35e12 and report["device"]["link_bandwidth"] == 63e9
