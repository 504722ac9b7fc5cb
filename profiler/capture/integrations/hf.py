"""Hugging Face Trainer: `Trainer(..., callbacks=[MfuCallback("runs/hf")])`.

The profiler starts with training, steps with every optimizer step (on_step_end) and writes the report when
training ends. F_model comes from the model's config and parameters at the sequence length of the first batch,
times the tokens the first optimizer step's forwards took (pass tokens_per_step to say otherwise); a model whose
config says nothing gets three times the first step's forward FLOPs, counted with FlopCounterMode. A fix's change
is given as TrainingArguments (`per_device_train_batch_size`, `bf16=True`, `torch_compile=True`,
`dataloader_num_workers`, `optim`, `activation_checkpointing` / `gradient_checkpointing`).
"""

from transformers import TrainerCallback

from profiler.capture.api import profile, settled

# the TrainingArguments a fix may change (profiler/mfu/vocabulary.py translates ours into them)
TRAINING_ARGUMENTS = ("per_device_train_batch_size", "gradient_accumulation_steps", "dataloader_num_workers",
                      "dataloader_pin_memory", "torch_compile", "bf16", "fp16", "optim", "gradient_checkpointing",
                      "activation_checkpointing")  # the latter is the former's name from transformers 5.2x


class MfuCallback(TrainerCallback):
    def __init__(self, out_dir, tokens_per_step: int | None = None, **profile_args):
        self.out_dir, self.tokens_per_step, self.profile_args = out_dir, tokens_per_step, settled(profile_args)
        self.session: profile | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero or args.world_size > 1:
            worker = f"rank{args.process_index}" if args.world_size > 1 else ""
            self.session = profile(self.out_dir, model=model, tokens_per_step=self.tokens_per_step,
                                   dtype="bfloat16" if args.bf16 else "float16" if args.fp16 else "float32",
                                   worker=worker, report=state.is_world_process_zero,
                                   run_config={k: getattr(args, k) for k in TRAINING_ARGUMENTS if hasattr(args, k)},
                                   vocabulary="hf",
                                   **self.profile_args)
            self.session.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.session:
            self.session.step()

    def on_train_end(self, args, state, control, **kwargs):
        if self.session:
            self.session.__exit__(None, None, None)
            self.session = None
