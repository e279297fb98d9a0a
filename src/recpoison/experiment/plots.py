"""PNG plots of a report (matplotlib, Agg canvas, no global pyplot state).

One figure per (dataset, victim), one panel per target type, one line per attack with SE error
bars: HR_t vs attack size (always), vs K (when K is swept), vs filler count (when swept), and
the detector's FNR by attack and size (with a detector), and for explicit victims the RMSE
shift and the integrity shift vs attack size (Li et al. 2016, Figure 1). Fixed dimensions take
the default values: K = 10 (else the smallest), the largest size, the first knowledge and
filler setting. Edge attacks (untargeted protocol) get accuracy vs the number of perturbations
instead, one line per attack starting from the clean victim (thesis Figures 4.1-4.4).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recpoison.experiment.report import NO_ATTACK


def write_plots(report: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write every applicable plot of ``report`` into ``out_dir``; return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if report.empty:
        return written
    for (dataset, victim), frame in report.groupby(["dataset", "victim"], sort=False):
        stem = f"{_slug(dataset)}_{_slug(victim)}"
        if "train_accuracy" in frame.columns and frame["train_accuracy"].notna().any():
            path = out / f"accuracy_vs_perturbations_{stem}.png"
            _accuracy_plot(frame, f"Accuracy — {dataset}, {victim}", path)
            written.append(path)
            continue
        sweeps = [
            ("size", "attack size (fraction of users)", "hr_vs_size", True),
            ("k", "K (recommendation list length)", "hr_vs_k", False),
            ("n_fillers", "filler items per fake user", "hr_vs_fillers", False),
        ]
        for x, xlabel, name, always in sweeps:
            if always or frame[x].nunique() > 1:
                path = out / f"{name}_{stem}.png"
                _line_plot(_fix_others(frame, x), x, xlabel, f"HR_t — {dataset}, {victim}", path)
                written.append(path)
        explicit = [
            ("rmse_shift", "RMSE shift (poisoned − clean)", "rmse_shift_vs_size"),
            ("integrity_shift", "target mean rating shift", "integrity_shift_vs_size"),
        ]
        for y, ylabel, name in explicit:
            if y in frame.columns and frame[y].notna().any():
                path = out / f"{name}_{stem}.png"
                shown = _fix_others(frame, "size").dropna(subset=[y])
                title = f"{ylabel} — {dataset}, {victim}"
                _line_plot(
                    shown,
                    "size",
                    "attack size α (fraction of users)",
                    title,
                    path,
                    y=y,
                    ylabel=ylabel,
                )
                written.append(path)
        if "fnr" in frame.columns:
            path = out / f"fnr_by_attack_{stem}.png"
            _fnr_plot(_fix_others(frame, "size"), f"FNR — {dataset}, {victim}", path)
            written.append(path)
    return written


def _fix_others(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """Keep one value of every swept dimension other than ``x`` (see the module doc)."""
    keep = frame
    ks = sorted(keep["k"].unique())
    defaults = {
        "k": 10 if 10 in ks else ks[0],
        "size": keep["size"].max(),
        "knowledge": keep["knowledge"].iloc[0],
        "n_fillers": keep["n_fillers"].iloc[0],
    }
    for dim, value in defaults.items():
        if dim == x:
            continue
        keep = keep[keep[dim].isna()] if pd.isna(value) else keep[keep[dim] == value]
    return keep


def _line_plot(
    frame: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    path: Path,
    y: str = "hr_mean",
    ylabel: str = "HR_t",
) -> None:
    error = "hr_se" if y == "hr_mean" else None
    types = list(dict.fromkeys(frame["target_type"]))
    fig = Figure(figsize=(5 * len(types), 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(types), squeeze=False)[0]
    for ax, target_type in zip(axes, types, strict=True):
        for attack, rows in frame[frame["target_type"] == target_type].groupby(
            "attack", sort=False
        ):
            rows = rows.sort_values(x)
            style = "--" if attack == NO_ATTACK else "-"
            ax.errorbar(
                rows[x].astype(float),
                rows[y],
                yerr=rows[error].fillna(0) if error else None,
                label=attack,
                linestyle=style,
                marker="o",
                capsize=3,
            )
        ax.set(title=f"{target_type} targets", xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _accuracy_plot(frame: pd.DataFrame, title: str, path: Path) -> None:
    """Accuracy (%) on training and unseen edges vs perturbations N_p, one line per attack."""
    frame = frame[frame["k"] == frame["k"].min()]
    clean = frame[frame["attack"] == NO_ATTACK].head(1)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, prefix, where in zip(axes, ("train", "unseen"), ("training", "unseen"), strict=True):
        y = f"{prefix}_accuracy"
        for attack, rows in frame[frame["attack"] != NO_ATTACK].groupby("attack", sort=False):
            rows = pd.concat([clean, rows]).sort_values("n_fake")
            x = rows["n_fake"].where(rows["attack"] != NO_ATTACK, 0).astype(float)
            ax.errorbar(
                x,
                rows[y] * 100,
                yerr=rows[f"{y}_se"].fillna(0) * 100,
                label=attack,
                marker="o",
                capsize=3,
            )
        ax.set(title=f"{where} edges", xlabel="perturbations N_p", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _fnr_plot(frame: pd.DataFrame, title: str, path: Path) -> None:
    attacked = frame[frame["attack"] != NO_ATTACK]
    table = attacked.groupby(["attack", "size"], sort=False)["fnr"].mean().unstack("size")
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(1, table.shape[1])
    for j, size in enumerate(table.columns):
        ax.bar(
            [i + j * width for i in range(len(table))],
            table[size],
            width=width,
            label=f"{size * 100:g}%",
        )
    ax.set_xticks(
        [i + width * (table.shape[1] - 1) / 2 for i in range(len(table))], list(table.index)
    )
    ax.set(ylabel="FNR (fake users missed)", ylim=(0, 1), title=title)
    ax.legend(title="attack size")
    fig.savefig(path, dpi=100)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-") or "x"
