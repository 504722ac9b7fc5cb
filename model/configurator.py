"""nanoGPT-style configuration: an optional config file, then `--key=value` overrides.

nanoGPT exec()s its config files; here they are parsed, never executed: a file may hold only `name = value`
lines (and comments), where a value is a Python literal or arithmetic on literals (`batch_size = 4 * 2`,
`min_lr = 1e-3 / 10`), and `--key=value` takes the same values. Every key must exist in one of the config
dataclasses and keep the type of its default, so a typo (with the nearest known key suggested) or a wrong type
is an error, not a silent new global. nanoGPT's keys that this project does not implement are named once.
"""

import ast
import dataclasses
import difflib
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

ALIASES = {"out": "out_dir"}  # this project's older spelling of nanoGPT's key
IGNORED = {"wandb_log", "wandb_project", "wandb_run_name"}  # nanoGPT's, not implemented: the run logs to TensorBoard
OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_EXPONENT = 64  # 2 ** 64 is as large as a config value gets; larger powers are refused, not computed


class ConfigError(ValueError):
    pass


def evaluate(node: ast.AST):
    """The value of a literal or of arithmetic on numeric literals; ValueError for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](number(evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = number(evaluate(node.left)), number(evaluate(node.right))
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError("exponent too large")
        try:
            return OPERATORS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
    if isinstance(node, ast.List):
        return [evaluate(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(evaluate(e) for e in node.elts)
    raise ValueError(f"not a literal or arithmetic on literals: {ast.unparse(node)}")


def number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"arithmetic on a non-number: {value!r}")
    return value


def parse_literal(text: str):
    """A literal or arithmetic (`4 * 2`, `1e-3 / 10`), or the text itself as a string (--dtype=bfloat16)."""
    try:
        return evaluate(ast.parse(text.strip(), mode="eval").body)
    except (ValueError, SyntaxError):
        return text


def read_config_file(path: Path) -> dict:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: not a config file: {e.msg}") from None
    values = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(f"{path}:{node.lineno}: only `name = literal` lines are allowed in a config file")
        try:
            values[node.targets[0].id] = evaluate(node.value)
        except ValueError as e:
            raise ConfigError(f"{path}:{node.lineno}: the value of {node.targets[0].id} is {e}") from None
    return values


def literal_choices(config) -> dict[str, tuple]:
    """The fields of a config dataclass annotated Literal[...] (a switch), with their choices."""
    hints = get_type_hints(type(config))
    return {f.name: get_args(hints[f.name]) for f in dataclasses.fields(config) if get_origin(hints[f.name]) is Literal}


def coerce(key: str, value, default):
    """The value with the default's type; ints are accepted for floats, nothing else is converted (a switch's
    choices are the config's own check: TrainConfig.validate)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        return str(value)
    raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")


def apply(configs: list, argv: list[str]) -> list[str]:
    """Set fields of the dataclass instances in `configs` from argv. Returns the keys given that this project
    ignores (nanoGPT's wandb_*). Raises ConfigError."""
    values = {}
    for arg in argv:
        if arg.startswith("--"):
            if "=" not in arg:
                raise ConfigError(f"expected --key=value, got {arg}")
            key, text = arg[2:].split("=", 1)
            values[key] = parse_literal(text)
        else:
            values.update(read_config_file(Path(arg)))
    owners = {f.name: cfg for cfg in configs for f in dataclasses.fields(cfg)}
    ignored = []
    for key, value in values.items():
        key = ALIASES.get(key, key)
        if key in IGNORED:
            ignored.append(key)
            continue
        if key not in owners:
            near = difflib.get_close_matches(key, list(owners) + list(ALIASES), n=1, cutoff=0.6)
            raise ConfigError(f"unknown config key: {key}" + (f" (did you mean {near[0]}?)" if near else ""))
        setattr(owners[key], key, coerce(key, value, getattr(owners[key], key)))
    return ignored


def describe(configs: list) -> str:
    """Every key with its default, as --key=value lines grouped by config class: the --help text."""
    lines = []
    for cfg in configs:
        lines.append(f"{type(cfg).__name__}:")
        choices = literal_choices(cfg)
        lines += [f"  --{f.name}={getattr(cfg, f.name)}" + (f"  ({' | '.join(choices[f.name])})"
                                                          if f.name in choices else "")
                  for f in dataclasses.fields(cfg)]
    return "\n".join(lines)
