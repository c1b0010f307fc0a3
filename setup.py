"""Build hook: the wheel carries the shipped configs and the tiny corpus as ``moduli/_shipped/``.

They stay at the repository root (``configs/``, ``data/tiny-wikitext/``) in a checkout;
``moduli.resources`` finds them in either place. Everything else is in ``pyproject.toml``.
"""

from pathlib import Path
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"configs": "**/*.yaml", "data/tiny-wikitext": "*.txt"}


class BuildWithShippedFiles(build_py):
    """``build_py`` that also copies :data:`SHIPPED` into ``moduli/_shipped/`` of the build."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout directly
            return
        target = Path(self.build_lib) / "moduli" / "_shipped"
        for folder, pattern in SHIPPED.items():
            for source in sorted((ROOT / folder).glob(pattern)):
                dest = target / source.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)


setup(cmdclass={"build_py": BuildWithShippedFiles})
