"""Load a run folder with torch-tb-profiler's own RunLoader and print what it found, as JSON.

The plugin starts its parsing processes with spawn, so this must be an importable file run as a script.
"""

import json
import sys

if __name__ == "__main__":
    from torch_tb_profiler import io
    from torch_tb_profiler.profiler.loader import RunLoader

    run = RunLoader("run", sys.argv[1], io.Cache()).load()
    found = []
    for profile in run.get_profiles():
        steps = profile.overview["steps"]["rows"] if profile.overview else []
        found.append({"worker": profile.worker, "span": profile.span, "steps": [row[0] for row in steps],
                      "overview_rows": steps})
    print(json.dumps(found))
