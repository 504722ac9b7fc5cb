"""A PyTorch Lightning fit with the MFU callback: this project's GPT (a nanoGPT model, built in code) trains on
random tokens and writes its report into runs/lightning-example (or the folder given).

    python examples/lightning_fit.py [OUT_DIR]
"""

import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.gpt import GPT, GPTConfig  # noqa: E402
from profiler.capture.integrations.lightning import MfuCallback  # noqa: E402
from profiler.capture.session import ProfileConfig  # noqa: E402

SEQ, BATCH, STEPS = 64, 8, 12


class TinyGPT(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.gpt = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=SEQ, vocab_size=512, dropout=0.0))
        self.config = self.gpt.config  # layers, heads, width, block size: F_model from the model's description

    def training_step(self, batch, batch_idx):
        _, loss = self.gpt(batch[:, :-1].contiguous(), batch[:, 1:].contiguous())
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main(out_dir: str):
    torch.manual_seed(0)
    tokens = torch.randint(0, 512, (BATCH * STEPS, SEQ + 1))
    loader = torch.utils.data.DataLoader(tokens, batch_size=BATCH)
    callback = MfuCallback(out_dir, tokens_per_step=BATCH * SEQ,
                           settings=ProfileConfig(skip_first=2, wait=1, warmup=1, active=3, repeat=1))
    trainer = L.Trainer(max_steps=STEPS, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(TinyGPT(), loader)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/lightning-example")
