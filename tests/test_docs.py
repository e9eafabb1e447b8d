"""The repository stands alone: its docs cite only files it holds, and every package of the
house sits on a floor of the layers contract (so a new package cannot escape the floors)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Files of the team's private notes that the repository must never send a reader to.
OUTSIDE = ("DESIGN" + ".md", "SEED" + "-NOTES")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines() if (ROOT / line).is_file()]


def test_no_file_cites_notes_outside_the_repository() -> None:
    cites = []
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".toml", ".yml", ".html", ".js", ".txt", ""}:
            continue
        text = path.read_text(errors="replace")
        cites += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE if name in text]
    assert not cites, "cite docs/ instead:\n" + "\n".join(cites)


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for doc in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} → {target}")
    assert not broken, "\n".join(broken)


def test_every_package_is_on_a_floor_and_in_the_architecture_doc() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    on_floors = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {
        p.parent.name for p in ROOT.glob("*/env.py") if p.parent.name == "migrations"
    }
    assert packages - {"tests", "bench"} == on_floors
    assert set(config["root_packages"]) == on_floors
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert all(f"`{name}/`" in architecture for name in on_floors)
