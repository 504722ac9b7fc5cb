import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_TRACES = ROOT.parent / "shared" / "traces"
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Prepared data and CPU peak measurements go to a per-session cache, not the user's home."""
    os.environ["MFU_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def shared_trace(name: str) -> Path:
    folder = SHARED_TRACES / name
    if not folder.is_dir():
        pytest.skip(f"shared trace folder {folder} is absent (it lives beside the repository, in ../shared)")
    return next(p for p in sorted(folder.iterdir()) if ".json" in p.name)
