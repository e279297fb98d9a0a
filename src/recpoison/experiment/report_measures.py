"""Report columns and tables of the untargeted (edge-flip) protocol and of remedies.

Untargeted cells (Aravind's thesis §4.2) store per retrain, in their info, accuracy / AUROC /
BCE loss on training edges (perturbed ones excluded) and unseen edges, and HR@10 / NDCG@10
(:mod:`recpoison.experiment.measures.untargeted`). A report row gets each metric's mean over
retrains and its standard error (``<metric>``, ``<metric>_se``), and its drop from the clean
victim of the same (dataset, victim): the ``none`` cell, whose retrain ``r`` has the same seed
and data split as retrain ``r`` of every attack cell, so the drop is averaged over the paired
differences ``clean_r - attacked_r`` and its SE is theirs (``<metric>_drop``,
``<metric>_drop_se``; a negative loss drop is a rise). ``n_fake`` holds the number of flips N_p.
A cell with ``attack_draws: D > 1`` holds ``D x retrains`` values, retrain ``r`` of every draw
trained with retrain ``r``'s victim seed: a crossed design (draws x victim seeds), whose mean
gets the standard error of :func:`crossed_standard_error`; ``attack_draws`` is a column.

Remedies (``remedy:`` in the spec): ``remedy_seconds`` (the remedy's seconds in the cell),
``remedy_retrain_seconds`` (a full retrain without the flagged users: the same for ``retrain``,
measured beside it for ``sisa``) and the remedied victim's leave-one-out ``remedy_hr`` /
``remedy_ndcg`` (means over targets and retrains).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recpoison.experiment.measures.untargeted import METRICS as EDGE_METRICS
from recpoison.experiment.spec import NO_ATTACK

#: Report columns of untargeted cells, in display order.
UNTARGETED_COLUMNS = (
    "attack_draws",
    *(
        f"{metric}{suffix}"
        for metric in EDGE_METRICS
        for suffix in ("", "_se", "_drop", "_drop_se")
    ),
)
#: Report columns of cells with an explicit remedy.
REMEDY_COLUMNS = (
    "remedy",
    "remedy_seconds",
    "remedy_retrain_seconds",
    "remedy_hr",
    "remedy_ndcg",
)
_PER_RETRAIN = "_per_retrain"


def measure_columns(info: dict[str, Any]) -> dict[str, Any]:
    """The untargeted and remedy columns of one cell (from its info)."""
    row: dict[str, Any] = {}
    if "untargeted" in info:
        draws = int(info["untargeted"].get("draws", 1))
        values = {
            m: np.asarray(info["untargeted"][m], dtype=float).reshape(draws, -1)
            for m in EDGE_METRICS
        }
        for metric, array in values.items():
            row[metric], row[f"{metric}_se"] = _mean_and_se(array)
        row["attack_draws"] = draws
        row[_PER_RETRAIN] = values
    if "remedy" in info:
        remedy = info["remedy"]
        quality = [q for per_target in remedy.get("quality", []) for q in per_target]
        row["remedy"] = remedy["name"]
        row["remedy_seconds"] = float(remedy["seconds"])
        row["remedy_retrain_seconds"] = float(remedy.get("retrain_seconds", remedy["seconds"]))
        row["remedy_hr"] = float(np.mean([q["hr"] for q in quality])) if quality else np.nan
        row["remedy_ndcg"] = float(np.mean([q["ndcg"] for q in quality])) if quality else np.nan
    return row


def add_drops(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill the ``*_drop`` columns from the per-retrain values against the ``none`` row of the
    same dataset and victim (see the module doc); drop the per-retrain column."""
    if _PER_RETRAIN not in frame.columns:
        return frame
    frame = frame.copy()
    clean = {
        (row["dataset"], row["victim"]): row[_PER_RETRAIN]
        for _, row in frame[frame["attack"] == NO_ATTACK].iterrows()
    }
    for index, row in frame.iterrows():
        values, base = row[_PER_RETRAIN], clean.get((row["dataset"], row["victim"]))
        if not isinstance(values, dict) or base is None:
            continue
        for metric in EDGE_METRICS:
            n = min(values[metric].shape[1], base[metric].shape[1])
            paired = base[metric][:1, :n] - values[metric][:, :n]  # [draws, retrains]
            mean, se = _mean_and_se(paired)
            frame.loc[index, f"{metric}_drop"], frame.loc[index, f"{metric}_drop_se"] = mean, se
    return frame.drop(columns=[_PER_RETRAIN])


#: (column, caption, as a percentage) of the Table 4.2-shaped tables.
UNTARGETED_TABLES = (
    ("train_accuracy", "Accuracy (%) on training edges, perturbed ones excluded", True),
    ("train_loss", "Loss (BCE) on training edges", False),
    ("train_auroc", "AUROC (%) on training edges", True),
    ("unseen_accuracy", "Accuracy (%) on unseen edges", True),
    ("unseen_auroc", "AUROC (%) on unseen edges", True),
    ("train_accuracy_drop", "Drop in accuracy (%) on training edges from the clean victim", True),
    ("unseen_accuracy_drop", "Drop in accuracy (%) on unseen edges from the clean victim", True),
    ("train_auroc_drop", "Drop in AUROC (%) on training edges from the clean victim", True),
    ("unseen_auroc_drop", "Drop in AUROC (%) on unseen edges from the clean victim", True),
    ("hr_at_10", "HR@10 of the held-out interactions (99 sampled negatives)", False),
    ("ndcg_at_10", "NDCG@10 of the held-out interactions", False),
)


def untargeted_markdown(report: pd.DataFrame) -> list[str]:
    """Tables shaped like the thesis's Tables 4.2-4.5: one row per number of perturbations
    N_p (and its share of the sampled negatives), one column per attack; row 0 is the clean
    victim. Cells read ``mean ± SE`` over retrains (and attack draws: a note under the
    heading says so)."""
    lines: list[str] = []
    for (dataset, victim), frame in report.groupby(["dataset", "victim"], sort=False):
        frame = frame[frame["k"] == frame["k"].min()]
        clean = frame[frame["attack"] == NO_ATTACK].head(1)
        attacked = frame[frame["attack"] != NO_ATTACK]
        attacks = list(dict.fromkeys(attacked["attack"]))
        sizes = sorted(attacked["size"].dropna().unique())
        draws = int(attacked["attack_draws"].fillna(1).max()) if len(attacked) else 1
        note = (
            [
                f"Each attack drawn {draws} times, each draw retrained with the clean victim's "
                "seeds; ± is the standard error over draws and victim seeds (crossed design).",
                "",
            ]
            if draws > 1
            else []
        )
        for column, caption, percent in UNTARGETED_TABLES:
            if column not in frame.columns or frame[column].isna().all():
                continue
            lines += [f"### {dataset} · {victim} — {caption}", "", *note]
            lines.append("| N_p | N_p (% of sampled negatives) | " + " | ".join(attacks) + " |")
            lines.append("|---" * (len(attacks) + 2) + "|")
            if not clean.empty:
                value = _value(clean.iloc[0], column, percent)
                lines.append("| 0 | 0% | " + " | ".join([value] * len(attacks)) + " |")
            for size in sizes:
                rows = attacked[attacked["size"] == size]
                by_attack = {r["attack"]: r for _, r in rows.iterrows()}
                cells = [
                    _value(by_attack[a], column, percent) if a in by_attack else "" for a in attacks
                ]
                n_p = int(rows["n_fake"].iloc[0])
                lines.append(f"| {n_p:,} | {size * 100:g}% | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def remedy_markdown(report: pd.DataFrame) -> list[str]:
    """One table per (dataset, victim): the remedy's cost and the remedied victim's quality."""
    if "remedy_seconds" not in report.columns or report["remedy_seconds"].isna().all():
        return []
    lines: list[str] = []
    rows = report[report["remedy_seconds"].notna()]
    rows = rows[rows["k"] == rows["k"].min()]
    for (dataset, victim), frame in rows.groupby(["dataset", "victim"], sort=False):
        lines += [
            f"### {dataset} · {victim} — after detection: remedy, HR_t and victim quality",
            "",
            "| attack | target type | size | remedy | HR_t after remedy | HR@10 | NDCG@10 | "
            "seconds | full retrain seconds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for _, r in frame.iterrows():
            lines.append(
                f"| {r['attack']} | {r['target_type']} | {r['size'] * 100:g}% | {r['remedy']} | "
                f"{_fmt(r.get('hr_mean_detected'))} | {_fmt(r['remedy_hr'])} | "
                f"{_fmt(r['remedy_ndcg'])} | {r['remedy_seconds']:.1f} | "
                f"{r['remedy_retrain_seconds']:.1f} |"
            )
        lines.append("")
    return lines


def _value(row: pd.Series, column: str, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean, se = row.get(column), row.get(f"{column}_se")
    if mean is None or pd.isna(mean):
        return "–"
    digits = 2 if percent else 4
    text = f"{mean * scale:.{digits}f}"
    return text if se is None or pd.isna(se) else f"{text} ± {se * scale:.{digits}f}"


def _fmt(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.4f}"


def _mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of ``[draws, retrains]`` values (one draw: over retrains)."""
    if len(values) == 1:
        return float(np.mean(values)), standard_error(values[0])
    return float(np.mean(values)), crossed_standard_error(values)


def crossed_standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``[D, R]`` values of a crossed design: row ``d`` an attack
    draw, column ``r`` a victim seed shared by every draw, x_dr = μ + a_d + b_r + e_dr.

    Var(mean) = σ²_a/D + σ²_b/R + σ²_e/(DR) is estimated from the two-way ANOVA mean squares
    (MS_draw, MS_seed, MS_residual) as (MS_draw + MS_seed − MS_residual)/(DR), never below
    MS_residual/(DR); with one victim seed, over draws alone. The standard error over all DR
    values as if independent would understate it: the draws share their victim seeds. Draws
    with a non-finite value are left out (NaN with fewer than 2 draws left).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values).all(axis=1)]
    n_draws, n_seeds = values.shape
    if n_draws < 2:
        return np.nan
    if n_seeds == 1:
        return standard_error(values[:, 0])
    mean = values.mean()
    draws, seeds = values.mean(axis=1), values.mean(axis=0)
    ms_draw = n_seeds * np.sum((draws - mean) ** 2) / (n_draws - 1)
    ms_seed = n_draws * np.sum((seeds - mean) ** 2) / (n_seeds - 1)
    residual = values - draws[:, None] - seeds[None, :] + mean
    ms_residual = np.sum(residual**2) / ((n_draws - 1) * (n_seeds - 1))
    variance = max(ms_draw + ms_seed - ms_residual, ms_residual) / (n_draws * n_seeds)
    return float(np.sqrt(variance))


def standard_error(values: np.ndarray) -> float:
    """Sample standard deviation / sqrt(n) of the finite values (NaN with fewer than 2)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else np.nan
