"""README and documentation site: the commands of the README and the guides parse and their
configs load (tests/test_readme.py runs the README's examples), the README's links resolve, every
page of the site's navigation and every included file exists, and the configuration reference
lists every key of the schema with its type, default, range and meaning."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from moduli.cli import build_parser, split_items
from moduli.config import load_config
from moduli.config.load import _all_keys
from moduli.config.reference import KeyReference, config_keys, config_reference_markdown, field_comments
from moduli.reproduce import load_preset

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tutorial_code = _load("tutorial_code", DOCS / "tools" / "tutorial_code.py")


def bash_commands(page: Path) -> list[str]:
    """The ``moduli ...`` command lines of the page's ```bash blocks (continuations joined)."""
    commands, inside, current = [], False, ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if not inside:
            continue
        current += line.split("  #")[0].rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if current.strip().startswith("moduli "):
                commands.append(current.strip())
            current = ""
    return commands


def links(page: Path) -> list[str]:
    """Targets of the page's Markdown links and images, without anchors and web addresses."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]


# -- README ------------------------------------------------------------------------------------

def test_readme_is_short():
    size = README.stat().st_size
    assert size <= 10_240, f"README.md is {size} bytes; keep it under 10 KB and move details into docs/"


def test_readme_links_resolve():
    targets = links(README)
    assert "docs/tutorials/regularizer.md" in targets and "RELIABILITY.md" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md", "docs/tutorials/reproduce.md"])
def test_documented_commands_parse_and_their_configs_load(page):
    commands = bash_commands(ROOT / page)
    assert commands
    parser = build_parser()
    for command in commands:
        argv = [a for a in shlex.split(command)[1:] if a != "$run"]
        if argv == ["evaluate"]:
            argv.append("runs/adding-0123456789ab")
        args = parser.parse_args(argv)
        if args.command in ("train", "sweep"):
            paths, overrides = split_items(args.items)
            paths = [ROOT / p if (ROOT / p).is_file() else p for p in paths]  # a path, or a shipped config's name
            overrides = [o.replace("pruning.targt", "pruning.target") for o in overrides]  # the shown typo
            load_config(paths, overrides, check_hardware=False)
        elif args.command == "reproduce":
            load_preset(args.table, args.preset)


# -- the site --------------------------------------------------------------------------------

def _nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_page_of_the_navigation_exists_and_every_page_is_listed():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert not [p for p in pages if not (DOCS / p).is_file()]
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "tools" not in p.parts)
    assert sorted(pages) == on_disk
    for hook in config["hooks"]:
        assert (ROOT / hook).is_file()


def test_included_files_and_linked_pages_exist():
    for page in DOCS.rglob("*.md"):
        for include in re.findall(r'^--8<-- "([^":]+)', page.read_text(), flags=re.M):
            assert (ROOT / include).is_file(), f"{page}: includes missing {include}"
        for target in links(page):
            if target.startswith("files/") or "/files/" in target:  # figures published by the results hook
                published = target.split("files/", 1)[1]
                assert (ROOT / "experiments" / "results" / published).is_file(), f"{page}: {target}"
            else:
                assert (page.parent / target).resolve().exists(), f"{page}: broken link {target}"


def test_results_hook_publishes_every_committed_figure(monkeypatch):
    hook = _load("results_files_hook", DOCS / "tools" / "results_files_hook.py")
    monkeypatch.setattr(hook.File, "generated", staticmethod(lambda config, uri, abs_src_path: (uri, abs_src_path)))
    published = hook.on_files([], config={})
    results = ROOT / "experiments" / "results"
    figures = sorted(results.rglob("*.png"))
    assert "navigation/cpu-dog/figures/figure_1c.png" in [p.relative_to(results).as_posix() for p in figures]
    assert published == [(f"results/files/{p.relative_to(results).as_posix()}", str(p)) for p in figures]


# -- the configuration reference ---------------------------------------------------------------

def test_reference_lists_every_key_once_with_type_default_range_and_meaning():
    text = config_reference_markdown()
    for key in _all_keys():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
        assert len(rows) == 1, key
    row = lambda key: next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))  # noqa: E731
    assert row("pruning.target") == (
        "| `pruning.target` | a number | `0.9` | 0 &lt;= target &lt; 1 | final fraction of pruned weights (ignored for none) |"
    )
    assert row("task").startswith("| `task` | a string | `required` | navigation, adding, language, digits |")
    assert "| `optim.betas` | a list of numbers | `[0.9, 0.999]` |" in row("optim.betas")
    assert row("model.nonlinearity").startswith("| `model.nonlinearity` | a string | `relu` | relu, tanh |")
    assert "(not part of the run hash)" in row("train.tensorboard")
    assert "not part of the run hash" not in row("train.seed")
    # a comment written above a field, over two lines
    assert "null: every word of the loaded splits; an int: the most frequent words" in row("language.max_vocab")


def test_reference_follows_the_schema_defaults():
    from moduli.config.schema import RunConfig

    defaults = RunConfig(task="adding")
    keys = {k.key: k for _, _, section in config_keys() for k in section}
    for key, ref in keys.items():
        value = defaults
        for part in key.split("."):
            value = getattr(value, part)
        if key == "task":
            continue
        expected = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        assert yaml.safe_load(ref.default) == yaml.safe_load(expected), key


@dataclasses.dataclass
class _Example:
    """A dataclass whose comments the reference reads."""

    plain: int = 1  # the plain field
    # a comment above,
    # on two lines
    above: float = 2.0
    # a comment that a blank line separates from its field

    alone: str = "x"
    both: bool = True  # the same line wins
    text: str = "# not a comment"


def test_field_comments_reads_same_line_and_preceding_comments():
    assert field_comments(_Example) == {
        "plain": "the plain field",
        "above": "a comment above, on two lines",
        "both": "the same line wins",
    }
    with pytest.raises(ValueError, match="_Example.alone has no comment in schema.py"):
        config_keys(_Example)


def test_the_config_page_is_filled_by_the_hook():
    hook = _load("config_reference_hook", DOCS / "tools" / "config_reference_hook.py")
    page = (DOCS / "reference" / "config.md").read_text()
    assert page.count(hook.MARKER) == 1
    rendered = hook.on_page_markdown(page, page=None)
    assert hook.MARKER not in rendered and config_reference_markdown() in rendered
    assert hook.on_page_markdown("# other page", page=None) == "# other page"
    assert isinstance(config_keys()[0][2][0], KeyReference)
