"""Precision timed at the trace's own shapes where the trace was recorded here (mfu/shapetime.py), and a fix's
change in the recording program's own words (mfu/vocabulary.py)."""

import json

import pytest

from profiler.mfu.shapetime import time_shapes
from profiler.mfu.vocabulary import in_their_words, settings
from profiler.trace.metadata import RunMetadata

MM = ("aten::mm", json.dumps([[256, 512], [512, 1024]]), json.dumps(["float", "float"]), json.dumps(["", ""]))


def test_each_shape_is_replayed_in_each_precision_and_weighed_by_the_traces_own_time():
    """Two steps of 3 calls of a 256 x 512 x 1024 mm (268 MFLOP each), 9 ms of them in the trace."""
    timing = time_shapes({MM: 6}, {MM: 18_000.0}, 2, "float32", "cpu")
    assert timing is not None and timing.shapes == 1
    assert timing.flops == pytest.approx(3 * 2 * 256 * 512 * 1024)
    assert timing.replayed_us == timing.counted_us == pytest.approx(9000)
    assert timing.us_by_dtype["float32"] == pytest.approx(9000)  # the run's dtype: the trace's own time
    assert set(timing.us_by_dtype) == {"float32", "bfloat16"} and timing.isolated_us["float32"] > 0


def test_a_shape_that_cannot_be_replayed_is_left_out():
    odd = ("aten::mm", json.dumps([[256, 512], [3, 1024]]), "[]", "[]")  # does not multiply
    conv = ("aten::convolution", json.dumps([[1, 3, 8, 8], [4, 3, 3, 3]]), "[]", "[]")
    assert time_shapes({odd: 1, conv: 1}, {odd: 10.0, conv: 10.0}, 1, "float32", "cpu") is None


def test_a_change_is_given_in_the_programs_own_keys_and_only_those():
    ours = {"batch_size": 32, "dtype": "bfloat16", "num_workers": 4, "optimizer_impl": "fused", "compile": True}
    nanogpt = RunMetadata(vocabulary="config", config={"batch_size": 8, "dtype": "float32", "compile": False})
    assert in_their_words(ours, nanogpt) == {"batch_size": 32, "dtype": "bfloat16", "compile": True}
    assert in_their_words({"compile": "yes"}, nanogpt) is None  # a value of another type than the user's
    hf = RunMetadata(vocabulary="hf",
                     config={"per_device_train_batch_size": 8, "bf16": False, "optim": "adamw_torch"})
    assert in_their_words(ours, hf) == {"per_device_train_batch_size": 32, "bf16": True, "dataloader_num_workers": 4,
                                        "optim": "adamw_torch_fused", "torch_compile": True}
    assert settings(hf) == {"batch_size": 8, "optimizer_impl": "foreach"}
    lightning = RunMetadata(vocabulary="lightning", config={"precision": "32-true", "accumulate_grad_batches": 1})
    assert in_their_words(ours, lightning) == {"precision": "bf16-mixed"}
    assert settings(lightning) == {"dtype": "float32", "gradient_accumulation_steps": 1}
    assert in_their_words(ours, RunMetadata(tokens_per_step=512)) is None  # the API without a config: fixes stay code
