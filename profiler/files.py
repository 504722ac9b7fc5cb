"""Writing files so that a crash, or another process writing the same file, never leaves a half-written one."""

import os
from pathlib import Path


def write_atomic(path: Path, text: str):
    """Write to a private temporary file beside `path`, then rename it over `path` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
