"""Conventions of the code that a reviewer would otherwise have to check by eye."""

import dataclasses
import importlib
import inspect
import pkgutil

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
