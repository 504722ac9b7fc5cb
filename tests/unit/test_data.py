import pickle

import numpy as np
import pytest

from model import data


def test_default_dataset_is_deterministic_uint16_bytes(tmp_path):
    a = data.prepare_default_dataset(tmp_path / "a")
    b = data.prepare_default_dataset(tmp_path / "b")
    train = np.fromfile(a / "train.bin", dtype=np.uint16)
    val = np.fromfile(a / "val.bin", dtype=np.uint16)
    assert len(train) + len(val) == data.DEFAULT_CORPUS_BYTES
    assert len(val) == int(data.DEFAULT_CORPUS_BYTES * data.VAL_FRACTION)
    assert train.max() < 256 and val.max() < 256
    assert (a / "train.bin").read_bytes() == (b / "train.bin").read_bytes()
    assert data.read_vocab_size(a) == 256
    # bytes of Python source: mostly printable ASCII
    assert np.mean((train >= 32) & (train < 127) | (train == 10)) > 0.95


def test_vocab_size_from_nanogpt_meta_pkl_without_unpickling(tmp_path):
    meta = {"vocab_size": 65, "itos": {i: chr(65 + i) for i in range(3)}, "stoi": {"A": 0}}
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    assert data.read_vocab_size(tmp_path) == 65

    class Evil:
        def __reduce__(self):
            return (pytest.fail, ("the meta file was unpickled",))

    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 50257, "x": Evil()}))
    assert data.read_vocab_size(tmp_path) == 50257


def test_loader_batches_have_block_shapes_and_shifted_targets(tmp_path):
    folder = data.write_bins(bytes(range(256)) * 40, tmp_path)
    loader = data.make_loader(folder / "train.bin", block_size=16, batch_size=4, n_batches=3)
    batches = list(loader)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == y.shape == (4, 16) and str(x.dtype) == "torch.int64"
    assert (x[:, 1:] == y[:, :-1]).all()
    again = next(iter(data.make_loader(folder / "train.bin", 16, 4, 3, num_workers=1)))
    assert (again[0] == x).all()  # the same windows with a worker process
