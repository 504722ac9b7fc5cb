"""Numbers as data: a finding's facts and a warning's note, which diagnosis/ and report/notes.py word.

A stage that finds something gives its numbers by name, each in the unit its name ends with (`_ms`, `_pct`,
`_tflops_per_s`) or a count, or a short string; the English is written from them at the end, and the JSON carries
both, so that a script reads `warnings_data[i]["numbers"]["steps"]` instead of parsing a sentence.
"""

import json
from dataclasses import dataclass, field, replace
from typing import Any

Facts = dict[str, Any]  # name → number, short string, or a list of such records


@dataclass(frozen=True)
class Note:
    """A warning: what happened (`code`, a key of report/notes.py) and its numbers. `ranks` is set in a job of
    several ranks: "all", or the ranks that gave it ("0-3, 5")."""

    code: str
    numbers: Facts = field(default_factory=dict)
    ranks: str = ""

    def key(self) -> str:
        """Equal notes have equal keys (a dict of numbers does not hash): a job says each once."""
        return json.dumps([self.code, self.numbers, self.ranks], sort_keys=True, default=str)

    def of_ranks(self, ranks: str) -> "Note":
        return replace(self, ranks=ranks)
