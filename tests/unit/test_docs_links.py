"""The README and the docs site link only to files that exist: `mkdocs build --strict` (in .ci/run) checks the
site's pages among themselves, this the README's links into docs/ and every page's links outside code blocks."""

import re

from conftest import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(path):
    text = FENCE.sub("", path.read_text())
    return [m.group(1) for m in LINK.finditer(text) if not m.group(1).startswith(("http://", "https://", "mailto:"))]


def test_every_relative_link_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = [f"{page.relative_to(ROOT)} -> {target}" for page in pages for target in links(page)
              if not (page.parent / target).exists()]
    assert broken == []
    assert len(links(ROOT / "README.md")) >= 15  # the front door points into the site


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for command in ("pip install torch==2.13.0 -e '.[test]'", "python scripts/profile_run.py", "python -m pytest -q"):
        assert command in text
