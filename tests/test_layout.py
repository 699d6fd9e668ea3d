"""The README's layout section lists each package's modules under that package, names no module in a
subpackage's ``( ... )`` listing that is not there, and the baselines by their class names; each
command has its own CLI module."""

import re
from pathlib import Path

import baselines

ROOT = Path(__file__).resolve().parents[1]
TOP = ["dien_core", "bench"]
SUBPACKAGES = ["dien_core/kernels", "dien_core/serving", "bench/data", "bench/run", "bench/tune", "bench/profile", "bench/serving",
               "bench/distributed"]  # fmt: skip


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def top_level(block: str) -> dict[str, str]:
    """Each top-level entry's text (``dien_core/   ...`` up to the next line that starts a new entry)."""
    entries = re.split(r"\n(?=\S)", block.strip("\n"))
    return {entry.split("/", 1)[0]: entry.split("/", 1)[1] for entry in entries}


def subpackage(text: str, name: str) -> tuple[str, str]:
    """The text inside ``name/ ( ... )`` and ``text`` without it."""
    start = re.search(rf"\b{name}/ \(", text)
    assert start, f"{name}/ has no (...) listing"
    depth, i = 1, start.end()
    while depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return text[start.end() : i - 1], text[: start.start()] + text[i:]


def segments() -> dict[str, str]:
    entries = top_level(layout_block())
    out = {}
    for package in SUBPACKAGES:
        parent, name = package.split("/")
        out[package], entries[parent] = subpackage(entries[parent], name)
    out.update({package: entries[package] for package in TOP})
    out["baselines"] = entries["baselines"]
    return out


def modules(package: str) -> set[str]:
    folder = ROOT / package
    names = {m.stem for m in folder.glob("*.py") if m.stem not in ("__init__", "__main__")}
    return names | {d.name for d in folder.iterdir() if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").exists()}


def test_each_module_is_listed_under_its_own_package():
    listed = segments()
    missing = []
    for package in TOP + SUBPACKAGES:
        words = set(re.findall(r"\w+", listed[package]))
        missing += [f"{package}/{m}" for m in sorted(modules(package)) if m not in words]
        subs = [d.name for d in (ROOT / package).iterdir() if (d / "__init__.py").is_file()]
        missing += [f"{package}/{d}/" for d in subs if f"{package}/{d}" not in SUBPACKAGES]
    assert missing == []


def test_the_listing_names_no_module_that_is_not_there():
    """Each item of a package's ``( ... )`` listing starts with one of its modules (or folders)."""
    stale = []
    for package, text in segments().items():
        if package not in SUBPACKAGES:
            continue
        for item in re.split(r"[,;]", text):
            first = re.match(r"\s*(\w+)", item)
            if first and first.group(1) not in modules(package):
                stale.append(f"{package}: {first.group(1)}")
    assert stale == []


def test_baselines_line_names_exactly_the_baseline_models():
    assert set(re.findall(r"\w+", segments()["baselines"])) == set(baselines.__all__)


def test_each_command_has_its_own_cli_module():
    for package in ("bench/run", "bench/tune", "bench/profile", "bench/serving", "bench/data"):
        assert (ROOT / package / "cli.py").is_file(), package
        assert (ROOT / package / "__init__.py").is_file(), package
