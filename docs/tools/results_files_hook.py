"""MkDocs hook: publishes the committed figures of experiments/results/ under results/files/.

The results pages show the figures the reproduction commands wrote, from where they are
committed, so the site never carries a second copy that could go stale.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
PREFIX = "results/files"  # site path of experiments/results/


def on_files(files: Files, config, **kwargs) -> Files:
    """Add every PNG under experiments/results/ as ``results/files/<path below results>``."""
    for path in sorted(RESULTS.rglob("*.png")):
        uri = f"{PREFIX}/{path.relative_to(RESULTS).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
