"""The MFU bottleneck analyzer: torch.profiler integration and the analysis of Kineto traces.

    with profiler.profile(out_dir, model=model, tokens_per_step=n) as p: ... p.step()
    p = profiler.start(out_dir, model=model, tokens_per_step=n); ... p.step(); ... p.stop()
    profiler.profile(..., settings=profiler.ProfileConfig(active=4, peak_flops=989e12), run_config=config)
"""


def __getattr__(name):
    """profiler.profile, profiler.start and their settings (ProfileConfig), imported on first use: the analysis
    alone does not need torch."""
    if name in ("profile", "start", "ProfileConfig"):
        from profiler.capture import api

        return getattr(api, name)
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
