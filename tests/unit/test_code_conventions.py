"""Conventions of the code that a reviewer would otherwise have to check by eye."""

import ast
import dataclasses
import functools
import importlib
import inspect
import pkgutil
from pathlib import Path

import profiler

KW_ONLY_FROM = 5  # a record of this many fields or more is built by name: its positions are no contract


def profiler_records():
    for info in pkgutil.walk_packages(profiler.__path__, "profiler."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and obj.__module__ == info.name:
                yield f"{info.name}.{name}", obj


def test_every_record_of_five_fields_or_more_is_built_by_keyword():
    records = dict(profiler_records())
    assert len(records) > 30  # the walk found the package's records, not an empty list
    positional = [name for name, cls in records.items()
                  if len(dataclasses.fields(cls)) >= KW_ONLY_FROM
                  and not all(f.kw_only for f in dataclasses.fields(cls))]
    assert positional == []


PACKAGE = Path(profiler.__file__).parent
MAX_IMPORT_CHAIN = 13  # modules in a row, each importing the next: records sit low, writers share helpers
UNIT_FACTORS = {1e3, 1e6, 1e9, 1e12}  # µs ↔ ms ↔ s, and the reports' GB/s, TFLOP/s


def module_imports() -> dict[str, set[str]]:
    """Each profiler module → the profiler modules it imports (a name imported from a package counts as its
    module where it is one)."""
    paths = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("profiler"):
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("profiler")}
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    @functools.cache
    def from_(module: str) -> tuple[str, ...]:
        return (module,) + max((from_(m) for m in graph[module]), key=len, default=())
    return list(max((from_(m) for m in graph), key=len))


def test_the_longest_chain_of_module_imports_is_short():
    graph = module_imports()
    assert len(graph) > 60 and graph["profiler.pipeline"]  # the walk read the package
    chain = longest_chain(graph)
    assert len(chain) - 1 <= MAX_IMPORT_CHAIN, " -> ".join(chain)


def test_units_are_converted_in_settings_and_the_reports_only():
    """The MFU stage computes in seconds, reads the analysis' µs through analysis/records.py, and leaves ms, GB/s
    and TFLOP/s to named factors (settings.py): no bare 1000 or 1e6 outside the report writers."""
    bare = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in PACKAGE.rglob("*.py")
            if path.name != "settings.py" and path.parent.name != "report"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value in UNIT_FACTORS]
    assert bare == []
