"""Thin adapters of profiler.profile to training frameworks: Hugging Face's Trainer (hf.MfuCallback) and
PyTorch Lightning (lightning.MfuCallback). Each library is imported only by its own module."""
