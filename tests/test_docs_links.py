"""The documentation's structure: README.md is the front door (short, naming every reference page), and
every relative link in README.md and docs/*.md reaches a file, and every #anchor a heading of it (GitHub's rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 260  # the README moved its manual into docs/ (793 lines before): keep it at a screen or two

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _unfenced(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` there is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where links are links."""
    return re.sub(r"`[^`\n]*`", "", _unfenced(text))


def _slug(heading: str) -> str:
    """GitHub's heading anchor: markup dropped, lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _unfenced(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6} (.+)$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")  # a repeated heading gets -1, -2, ...
    return found


def _broken(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.is_file():
            broken.append(f"{target} (no file {file})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert not _broken(page), _broken(page)


def test_a_broken_link_or_anchor_is_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## The `fit` options, in short\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#the-fit-options-in-short) [gone](docs/b.md) [typo](docs/a.md#the-fit-option)\n"
                    "`[code](not/a/link.md)`\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert _broken(page) == ["docs/b.md (no file docs/b.md)", "docs/a.md#the-fit-option (no heading #the-fit-option in docs/a.md)"]
    finally:
        ROOT = saved


def test_the_slug_rule_is_githubs():
    assert _slug("Measured on an H200 (2026-12-04)") == "measured-on-an-h200-2026-12-04"
    assert _slug("labels.json") == "labelsjson"
    assert _slug("Don't-care areas (`--ignore`)") == "dont-care-areas---ignore"
    assert _slug("Drift on `/metrics`") == "drift-on-metrics"


def test_the_readme_stays_short_and_names_every_docs_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_LINES, "README.md is the front door: move reference text into docs/"
    unnamed = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in text]
    assert not unnamed, unnamed


def test_every_docs_page_says_what_it_covers_and_links_back():
    for page in PAGES[1:]:
        head = page.read_text(encoding="utf-8").split("\n\n")[:3]
        assert "](../README.md)" in "\n\n".join(head), page.name


def test_the_readme_keeps_the_headline_comparison():
    """The front door keeps the numbers a newcomer from anomalib compares, as docs/measured.md gives them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    measured = " ".join((ROOT / "docs" / "measured.md").read_text(encoding="utf-8").split())
    row = re.search(r"^\| anomalib PatchCore[^\n]*", readme, re.M).group(0)
    assert "| 0.93 | 0.86 | 0.75 | 73 % |" in row and "| 0.93 | 0.86 | 0.75 | 73 % |" in measured
    ours = re.search(r"^\| inspector \(default\) \|[^\n]*", readme, re.M).group(0)
    for figure in ("0.974", "0.894", "0.828", "47 %", "15.9"):
        assert figure in ours and figure in measured, figure
    assert "not reached" in readme and "0.95" in readme
