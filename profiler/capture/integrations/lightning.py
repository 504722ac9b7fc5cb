"""PyTorch Lightning: `Trainer(callbacks=[MfuCallback("runs/pl")])`.

The profiler starts with fitting, steps after every training batch and writes the report when fitting
ends. Pass tokens_per_step (batch size × sequence length) for F_model from the module's config (a
`config` attribute with layers, heads and width); without them F_model is counted with FlopCounterMode on the
first step. A fix's change is given as Trainer arguments (`Trainer(precision="bf16-mixed")`); the batch size
and the loader's workers are your DataLoader's, and stay code.
"""

from lightning.pytorch.callbacks import Callback

from profiler.capture.api import profile, settled


class MfuCallback(Callback):
    def __init__(self, out_dir, tokens_per_step: int | None = None, **profile_args):
        self.out_dir, self.tokens_per_step, self.profile_args = out_dir, tokens_per_step, settled(profile_args)
        self.session: profile | None = None

    def on_train_start(self, trainer, pl_module):
        worker = f"rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        trainer_args = {"precision": str(trainer.precision), "accumulate_grad_batches": trainer.accumulate_grad_batches}
        self.session = profile(self.out_dir, model=pl_module, tokens_per_step=self.tokens_per_step, worker=worker,
                               report=trainer.is_global_zero, run_config=trainer_args, vocabulary="lightning",
                               **self.profile_args)
        self.session.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.session:
            self.session.step()

    def on_train_end(self, trainer, pl_module):
        if self.session:
            self.session.__exit__(None, None, None)
            self.session = None
