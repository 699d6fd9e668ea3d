"""The README's layout section names every module of the packages, and each command has its own CLI module."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["dien_core", "dien_core/kernels", "dien_core/serving", "bench", "bench/data", "bench/run", "bench/tune",
            "bench/profile", "bench/serving", "bench/distributed"]  # fmt: skip


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_module():
    words = set(re.findall(r"[\w]+", layout_block()))
    missing = []
    for package in PACKAGES:
        folder = ROOT / package
        assert folder.is_dir(), package
        for module in folder.glob("*.py"):
            if module.stem not in ("__init__", "__main__") and module.stem not in words:
                missing.append(f"{package}/{module.name}")
        for sub in folder.iterdir():
            if sub.is_dir() and (sub / "__init__.py").is_file() and f"{sub.name}" not in words:
                missing.append(f"{package}/{sub.name}/")
    assert missing == []


def test_each_command_has_its_own_cli_module():
    for package in ("bench/run", "bench/tune", "bench/profile", "bench/serving", "bench/data"):
        assert (ROOT / package / "cli.py").is_file(), package
