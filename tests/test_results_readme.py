"""The README's section on each committed results folder names the commits that trained its cells
(the `commit` column of its runs.csv), so a reader always knows which code made a table; a folder
from before that column existed is marked stale."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "results").rglob("runs.csv"))


def sections(readme: str) -> dict[str, str]:
    """Heading line -> its text, for every README heading that names a results folder."""
    found, heading, lines = {}, None, []
    for line in readme.splitlines():
        if re.match(r"#{2,4} ", line):
            if heading is not None:
                found[heading] = "\n".join(lines)
            heading, lines = (line if "`results/" in line else None), []
        elif heading is not None:
            lines.append(line)
    if heading is not None:
        found[heading] = "\n".join(lines)
    return found


def section_of(folder: Path, found: dict[str, str]) -> str:
    rel = folder.relative_to(ROOT).as_posix() + "/"
    parents = [rel] + [p.as_posix() + "/" for p in Path(rel).parents if p.as_posix() not in (".", "results")]
    for name in parents:  # the folder's own section, else its parent's (results/ablation/ for results/ablation/order/)
        for heading, text in found.items():
            if f"`{name}" in heading:
                return heading + "\n" + text
    pytest.fail(f"README has no section on {rel} (a heading naming `{rel}` or a parent folder)")


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_readme_names_the_commits_of_each_results_folder(folder):
    text = section_of(folder, sections((ROOT / "README.md").read_text()))
    runs = pd.read_csv(folder / "runs.csv")
    if "commit" not in runs.columns:
        assert "Stale" in text, f"{folder}: no commit column, and its README section does not say it is stale"
        return
    for commit in sorted(set(runs["commit"].dropna().astype(str))):
        assert commit[:7] in text, f"{folder}: cells trained at {commit[:7]}, which its README section does not name"


def test_every_committed_folder_is_checked():
    assert {"quick", "order"} <= {p.name for p in FOLDERS}
