"""nanoGPT-style configuration: an optional config file, then `--key=value` overrides.

nanoGPT exec()s its config files; here they are parsed, never executed: a file may hold only
`name = literal` lines (and comments). Every key must exist in one of the config dataclasses and keep
the type of its default, so a typo or a wrong type is an error, not a silent new global.
"""

import ast
import dataclasses
from pathlib import Path


class ConfigError(ValueError):
    pass


def parse_literal(text: str):
    """A Python literal, or the text itself as a string (so --dtype=bfloat16 works unquoted)."""
    try:
        return ast.literal_eval(text)
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
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(f"{path}:{node.lineno}: the value of {node.targets[0].id} is not a literal") from None
    return values


def coerce(key: str, value, default):
    """The value with the default's type; ints are accepted for floats, nothing else is converted."""
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


def apply(configs: list, argv: list[str]):
    """Set fields of the dataclass instances in `configs` from argv; returns them. Raises ConfigError."""
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
    for key, value in values.items():
        if key not in owners:
            raise ConfigError(f"unknown config key: {key}")
        setattr(owners[key], key, coerce(key, value, getattr(owners[key], key)))
    return configs


def describe(configs: list) -> str:
    """Every key with its default, as --key=value lines grouped by config class: the --help text."""
    lines = []
    for cfg in configs:
        lines.append(f"{type(cfg).__name__}:")
        lines += [f"  --{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)]
    return "\n".join(lines)
