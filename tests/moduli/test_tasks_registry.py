"""The tasks own their knowledge: one registry, the schema's task names, no task branches elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moduli.config import load_config
from moduli.config.schema import TASKS
from moduli.errors import ConfigError
from moduli.reproduce.estimate import run_seconds
from moduli.reproduce.render import scale_text
from moduli.reproduce.tables import TABLES
from moduli.tasks import registry
from moduli.tasks.base import Task

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "moduli"


def test_the_registry_lists_the_schema_tasks():
    assert list(registry.TASKS) == list(TASKS)
    for name, task in registry.TASKS.items():
        assert issubclass(task, Task) and task.name == name and isinstance(task.metric, str)
    with pytest.raises(ConfigError, match="task = 'vision' is not an allowed choice"):
        registry.task_class("vision")


@pytest.mark.parametrize("task", TASKS)
def test_every_task_answers_what_the_tables_and_estimates_ask(task):
    cfg = load_config([ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"])
    assert run_seconds(cfg) > 0
    assert scale_text(cfg).startswith("hidden 32")
    assert task in TABLES and TABLES[task].task == task


def test_no_task_branches_outside_the_task_modules():
    """A comparison of a task name with a literal belongs to the task's own module."""
    pattern = re.compile(r"""\btask\s*(==|!=|in|not in)\s*[("']""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "tasks" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_package_imports_its_own_modules_plainly():
    text = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    assert "import_module(" not in text and "find_spec(\"moduli" not in text and "register_user_error" not in text
