"""The facts every cause shares (a time and its share of the step, the largest items, the calls that stalled the
device) and their wording, with a kernel's short name. A number in a sentence is a fact's value in the format shown
here. Imports nothing of the package: every sentence's module reads it."""

import re
from typing import TypedDict

PYTHON_FRAME = re.compile(r"\.py\(\d+\)")


class ShareFacts(TypedDict):
    ms: float  # per step
    share_pct: float  # of the step


class Largest(TypedDict):
    name: str
    ms: float  # per step


class PerStep(TypedDict):
    name: str
    per_step: float  # calls per step


class StallFacts(TypedDict, total=False):  # where stalls hold much of a cause's time
    stall_calls: list[PerStep]
    stall_sites: list[PerStep]


def short_name(name: str, width: int = 70) -> str:
    """A kernel's name without 'void ' and its parameter list, its template arguments cut to fit `width`; a
    plain name (an op, a triton kernel) as it is."""
    if PYTHON_FRAME.search(name):  # 'file.py(129): preprocess' is a name, not a parameter list
        return name
    name = name.removeprefix("void ")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the parameter list starts at the first '(' outside template brackets
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0 and i and name[i - 1] != " ":  # 'f (dynamo_timed)' keeps its note
            cut = i
            break
    name = name[:cut]
    return name if len(name) <= width or "<" not in name else name[:width - 3] + "..."


def of_step(ms: float, pct: float) -> str:
    return f"{ms:.2f} ms/step ({pct:.1f}% of the step)"


def share_words(f: ShareFacts) -> str:
    return of_step(f["ms"], f["share_pct"])


def largest(items: list[Largest]) -> str:
    return ", ".join(f"{short_name(i['name'])} {i['ms']:.2f} ms" for i in items)


def stalls(f: StallFacts) -> str:
    calls = ", ".join(f"{c['per_step']:,.0f} {c['name']}" for c in f["stall_calls"])
    sites = ", ".join(f"{s['name']} ({s['per_step']:,.0f})" for s in f["stall_sites"])
    return f"{calls or 'none recorded'} per step" + (f", made in {sites}" if sites else "")
