"""A fix's configuration change in the words of the program that recorded the trace.

The diagnosis states a change in scripts/profile_run.py's keys (`batch_size`, `dtype`, `num_workers`, ...). Our
runs take them as they are. Another program gets them only where it has the same setting under a name of its
own: a training script that handed its `config` dict to `profiler.profile` (nanoGPT's train.py keeps one of its
globals) gets the keys that dict holds, the Hugging Face Trainer its `TrainingArguments`, Lightning its `Trainer`
arguments. Where a program has no such setting, or said nothing of its configuration, the fix stays code (the
`fix` text: `torch.optim.AdamW(..., fused=True)`, `DataLoader(num_workers=...)`), never a key it would refuse.
"""

from collections.abc import Callable

import msgspec

from profiler.trace.metadata import RunMetadata

# the run metadata's "vocabulary": whose keys its "config" holds, and how a change is written there
OURS, CONFIG, HF, LIGHTNING = "profile_run", "config", "hf", "lightning"
FORMS = {OURS: "--key=value", CONFIG: "--key=value", HF: "TrainingArguments", LIGHTNING: "Trainer"}

# our key → (their key, our value → theirs, theirs → ours); values not in a table have no translation
_Translation = tuple[str, Callable[[object], object], Callable[[object], object]]


def _same(value):
    return value


def _table(pairs: dict) -> tuple[Callable, Callable]:
    back = {v: k for k, v in pairs.items()}
    return (lambda ours: pairs.get(ours)), (lambda theirs: back.get(theirs))


_HF_OPTIM = _table({"fused": "adamw_torch_fused", "foreach": "adamw_torch"})
_LIGHTNING_PRECISION = _table({"bfloat16": "bf16-mixed", "float16": "16-mixed", "float32": "32-true"})
TRANSLATIONS: dict[str, dict[str, _Translation]] = {
    HF: {
        "batch_size": ("per_device_train_batch_size", _same, _same),
        "gradient_accumulation_steps": ("gradient_accumulation_steps", _same, _same),
        "num_workers": ("dataloader_num_workers", _same, _same),
        "pin_memory": ("dataloader_pin_memory", _same, _same),
        "compile": ("torch_compile", _same, _same),
        "dtype": ("bf16", lambda d: True if d == "bfloat16" else False if d == "float32" else None,
                  lambda on: "bfloat16" if on else None),
        "optimizer_impl": ("optim", *_HF_OPTIM),
    },
    LIGHTNING: {
        "dtype": ("precision", *_LIGHTNING_PRECISION),
        "gradient_accumulation_steps": ("accumulate_grad_batches", _same, _same),
    },
}


def vocabulary(meta: RunMetadata) -> str | None:
    """Whose keys the run's configuration is in: ours (our runs), the user's own, a library's; None when the
    program said nothing of its configuration."""
    if meta.vocabulary in FORMS:
        return meta.vocabulary
    return OURS if meta.batch_size is not None and meta.optimizer_impl is not None else None  # before the field


def own_config(meta: RunMetadata) -> dict:
    """The settings the program handed over, in its own keys ({} where none)."""
    return meta.config or {}


def settings(meta: RunMetadata) -> dict:
    """The run's configuration in our keys, as far as it says (batch_size, num_workers, pin_memory, dtype,
    gradient_accumulation_steps, ...): what the rules size a change from."""
    words = vocabulary(meta)
    if words == OURS:
        return meta.as_json()
    config = own_config(meta)
    if words == CONFIG:
        return config
    out = {}
    for ours, (theirs, _, back) in TRANSLATIONS.get(words or "", {}).items():
        if theirs in config and back(config[theirs]) is not None:
            out[ours] = back(config[theirs])
    return out


def in_their_words(change: dict | None, meta: RunMetadata) -> dict | None:
    """A change in our keys as the program that recorded the trace spells it; only the keys it has (a value
    of another type than the user's own is left out: a config file's `compile = False` takes no string). None
    where none applies."""
    words = vocabulary(meta)
    if not change or words is None:
        return None
    if words == OURS:
        return dict(change)
    config = own_config(meta)
    out = {}
    for key, value in change.items():
        if words == CONFIG:
            if key in config and type(config[key]) is type(value):
                out[key] = value
            continue
        translation = TRANSLATIONS.get(words, {}).get(key)
        if translation and translation[1](value) is not None:
            out[translation[0]] = translation[1](value)
    return out or None


def form(meta: RunMetadata) -> str:
    """How a change is written for this program: `--key=value`, `TrainingArguments(...)`, `Trainer(...)`."""
    return FORMS.get(vocabulary(meta) or OURS, FORMS[OURS])


# the run metadata's fields that are our runs' configuration (the others are measurements: peak, micro-steps, ...)
OUR_KEYS = ("tokens_per_step", "batch_size", "gradient_accumulation_steps", "dtype", "compile", "optimizer_impl",
            "num_workers", "pin_memory", "data_delay", "device", "threads")


def run_config(meta: RunMetadata) -> dict:
    """The run's configuration as its program states it, for a diff of two runs' set-up: our runs' keys with the
    model's shape, a user's own settings (their plain values: a number, a string, a flag), {} for a foreign trace."""
    if vocabulary(meta) == OURS:
        shape = msgspec.to_builtins(meta.model) if meta.model else {}
        found = meta.as_json()
        return {**shape, **{k: found[k] for k in OUR_KEYS if k in found}}
    return {k: v for k, v in own_config(meta).items() if isinstance(v, (str, int, float, bool)) or v is None}
