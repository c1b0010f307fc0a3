"""Training curves of one or several runs: loss, the task's metric and sparsity against the step,
read from each run's ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.lines import Line2D

from ..errors import RunDirError
from ..run_dir import RunDir
from ..tasks.registry import TASKS, task_class
from ._runs import as_run, run_label
from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["METRIC_LABELS", "curves_frame", "training_curves"]

# y-axis labels of the tasks' headline metrics (``Task.metric``: ``Task.metric_label``)
METRIC_LABELS: dict[str, str] = {task.metric: task.metric_label for task in TASKS.values()}


def _task_metric(task: str) -> str:
    return task_class(task).metric


def _open_runs(runs: Sequence[Any]) -> list[RunDir]:
    if isinstance(runs, (str, Path, RunDir)) or not isinstance(runs, Sequence) or not runs:
        raise TypeError("runs must be a non-empty list of run directories (paths or RunDir objects)")
    opened = [as_run(run) for run in runs]
    names = [run.path.resolve() for run in opened]
    twice = sorted({str(p) for p in names if names.count(p) > 1})
    if twice:
        raise RunDirError(f"run directory {twice[0]} is given twice; list each run once")
    tasks = sorted({run.config.task for run in opened})
    if len(tasks) > 1:
        raise RunDirError(
            f"the runs are of different tasks ({', '.join(tasks)}), whose metrics share no axis; "
            "plot the runs of each task separately"
        )
    return opened


def curves_frame(runs: Sequence[Any]):
    """One row per metrics record of every run: ``run`` (legend label), ``split``, ``step``,
    ``loss``, ``metric`` (the task's headline metric, NaN on training records) and ``sparsity``.

    Raises RunDirError for a run without any metrics record (nothing to plot).
    """
    import pandas as pd

    frames = []
    for run in _open_runs(runs):
        records = run.read_metrics()
        if not records:
            raise RunDirError(
                f"{run.path} has no metrics yet ({run.metrics_path.name} is empty or missing); "
                "train it with 'moduli train' first"
            )
        metric = _task_metric(run.config.task)
        frame = pd.DataFrame.from_records(records)
        frames.append(pd.DataFrame({
            "run": f"{run.path.name}: {run_label(run)}, seed {run.config.train.effective_seed}",
            "split": frame.get("split", "train"),
            "step": frame["step"],
            "loss": frame.get("loss"),
            "metric": frame.get(metric),
            "sparsity": frame.get("sparsity"),
        }))
    return pd.concat(frames, ignore_index=True).astype({"loss": float, "metric": float, "sparsity": float})


def _log_scale_fits(values) -> bool:
    """Positive values spanning more than a factor of 10."""
    values = values.dropna()
    return bool(len(values)) and values.min() > 0 and values.max() > 10 * values.min()


def training_curves(runs: Sequence[Any], out_dir: str | Path, name: str = "training_curves") -> list[Path]:
    """Loss (training windows and validation), the task's metric (validation) and the sparsity of
    the pruned weights against the optimizer step, one colour per run.

    ``runs``: run directories (paths or :class:`~moduli.run_dir.RunDir`) of one task. A panel
    whose values span more than a factor of 10 has a log y axis.
    Returns ``<out_dir>/<name>.png`` and ``.pdf``.
    """
    import seaborn as sns

    out = check_out_dir(out_dir)
    name = check_name(name)
    data = curves_frame(runs)
    task = as_run(runs[0]).config.task
    metric = _task_metric(task)
    labels = list(dict.fromkeys(data["run"]))
    palette = dict(zip(labels, sns.color_palette("colorblind", len(labels))))
    dashes = {"train": "", "valid": (4, 2)}
    panels = [
        ("loss", data, f"{task} loss"),
        ("metric", data[data["split"] == "valid"], f"validation {METRIC_LABELS.get(metric, metric)}"),
        ("sparsity", data[data["split"] == "train"], "sparsity of the pruned weights"),
    ]
    with style():
        fig, axes = new_figure(1, 3, panel_size=(4.0, 3.2))
        for ax, (column, subset, label) in zip(axes[0], panels):
            subset = subset.dropna(subset=[column])
            if subset.empty:
                ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.lineplot(data=subset, x="step", y=column, hue="run", hue_order=labels, palette=palette,
                             style="split", dashes=dashes, markers=column == "metric", ax=ax, legend=False)
                if column != "sparsity" and _log_scale_fits(subset[column]):
                    ax.set_yscale("log")
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(label)
        if "sparsity" in data and data["sparsity"].notna().any():
            axes[0][2].set_ylim(-0.02, 1.02)
        handles = [Line2D([], [], color=palette[label], label=label) for label in labels]
        handles += [Line2D([], [], color="grey", label="training (window mean)"),
                    Line2D([], [], color="grey", linestyle="--", label="validation")]
        fig.legend(handles=handles, loc="outside lower center", ncols=1, frameon=False, fontsize="small")
        return save_figure(fig, out, name)
