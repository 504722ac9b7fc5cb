"""Where a device's memory capacity comes from: a size the user writes, the device's name and table, and a
CPU's machine or cgroup limit."""

import pytest

from profiler.mfu.memory import DEVICE_MEMORY_GB, machine_memory, memory_size, table_memory
from profiler.mfu.peak import DEVICE_TABLE


def test_memory_sizes_read_as_people_write_them():
    assert memory_size("80GB") == 80e9 and memory_size("24GiB") == 24 * 2**30 and memory_size("512 MB") == 512e6
    assert memory_size("8e9") == 8e9 and memory_size("1024") == 1024.0 and memory_size("2T") == 2e12
    for bad in ("lots", "-5GB", "0", "inf", "12XB"):
        with pytest.raises(ValueError):
            memory_size(bad)


def test_a_gpu_name_that_states_its_size_gives_it_else_the_table_its_smallest():
    assert table_memory("NVIDIA A100-SXM4-80GB") == 80e9 and table_memory("NVIDIA A100-PCIE-40GB") == 40e9
    assert table_memory("NVIDIA H100 80GB HBM3") == 80e9 and table_memory("Tesla V100-DGXS-32GB") == 32e9
    assert table_memory("NVIDIA GeForce RTX 4090") == 24e9 and table_memory("AMD Instinct MI210") == 64e9
    assert table_memory("NVIDIA A100") == 40e9  # both sizes exist: the smaller keeps the advice safe
    assert table_memory("Orin") is None and table_memory("a GPU nobody sells") is None  # unified memory, unknown
    # every device with a peak has a memory entry, the unified-memory Jetson alone excepted
    assert {p for p, _ in DEVICE_TABLE} - {p for p, _ in DEVICE_MEMORY_GB} == {r"\bOrin\b"}


def test_a_cpu_takes_its_cgroup_limit_where_one_is_below_the_machine(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal:       24576000 kB\nMemFree:  100 kB\n")
    assert machine_memory(tmp_path) == (24576000 * 1024, "machine memory")
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/memory.max").write_text("max\n")  # no limit set
    assert machine_memory(tmp_path) == (24576000 * 1024, "machine memory")
    (tmp_path / "sys/fs/cgroup/memory.max").write_text("8589934592\n")
    assert machine_memory(tmp_path) == (8589934592, "cgroup limit")
    assert machine_memory(tmp_path / "absent") is None
