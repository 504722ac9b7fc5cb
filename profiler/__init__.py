"""The MFU bottleneck analyzer: torch.profiler integration and the analysis of Kineto traces.

    with profiler.profile(out_dir, model=model, tokens_per_step=n) as p: ... p.step()
"""


def __getattr__(name):
    """profiler.profile, imported on first use: the analysis alone does not need torch."""
    if name == "profile":
        from profiler.capture.api import profile

        return profile
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
