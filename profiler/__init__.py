"""The MFU bottleneck analyzer: torch.profiler integration and the analysis of Kineto traces."""
