"""A Hugging Face Trainer run with the MFU callback: a tiny GPT-2 built from its config (no download) trains on
random tokens and writes its report into runs/hf-example (or the folder given).

    python examples/hf_trainer.py [OUT_DIR]
"""

import sys
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from profiler.capture.integrations.hf import MfuCallback  # noqa: E402
from profiler.capture.session import ProfileConfig  # noqa: E402

SEQ, BATCH, STEPS = 64, 8, 12


class RandomTokens(torch.utils.data.Dataset):
    def __len__(self):
        return BATCH * STEPS

    def __getitem__(self, i):
        ids = torch.randint(0, 512, (SEQ,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids}


def main(out_dir: str):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=512, n_positions=SEQ, n_embd=64, n_layer=2, n_head=2))
    args = TrainingArguments(output_dir=str(Path(out_dir) / "trainer"), per_device_train_batch_size=BATCH,
                             max_steps=STEPS, logging_steps=STEPS, save_strategy="no", report_to=[],
                             use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0)
    callback = MfuCallback(out_dir, tokens_per_step=BATCH * SEQ,
                           settings=ProfileConfig(skip_first=2, wait=1, warmup=1, active=3, repeat=1))
    Trainer(model=model, args=args, train_dataset=RandomTokens(), callbacks=[callback]).train()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/hf-example")
