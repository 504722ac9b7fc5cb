"""A nanoGPT-compatible GPT, its data pipeline and its training step."""

from model.gpt import GPT, GPTConfig
from model.train import TrainConfig

__all__ = ["GPT", "GPTConfig", "TrainConfig"]
