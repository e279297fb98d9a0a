"""Turn a results store into tables: a pandas DataFrame, Markdown shaped like the paper's tables,
CSV and JSON.

Statistics. For each row (dataset, victim, attack, size, target type, knowledge, fillers, K),
HR_t@K is first averaged over the retrains of each target, giving one number per target; those
are averaged over targets (``hr_mean``, the paper's HR averaged over targets and retrains). The
standard error ``hr_se`` is the sample standard deviation of the per-target means divided by
sqrt(number of targets): targets are the independent units (the retrains of one target share its
data and its fake users), and the per-target means already carry the retrain noise. With a
single target the SE is taken over its retrains instead. Targets without eligible users are
left out. The ``none`` row is computed once per (dataset, victim, target set) and repeated in
every size / knowledge / filler column. The same rules give ``hr_mean_detected`` /
``hr_se_detected`` under a detector; ``fpr`` and ``fnr`` are means over targets.

Explicit victims (Li et al. 2016): ``rmse_clean`` / ``rmse_poisoned`` are hold-out RMSEs of the
clean and the poisoned victim, ``rmse_shift`` their difference, ``integrity_shift`` the change of
the targets' mean predicted rating over the normal users (all means over targets and retrains),
``ttest_p`` the mean over poisoned datasets of the fake-vs-normal t-test p-value (small:
detectable). A target set of type ``none`` has no HR_t (``hr_mean`` is empty).

Edge attacks (untargeted protocol) and remedies: see :mod:`recpoison.experiment.report_measures`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recpoison.errors import ConfigError
from recpoison.experiment.report_measures import (
    REMEDY_COLUMNS,
    UNTARGETED_COLUMNS,
    add_drops,
    measure_columns,
    remedy_markdown,
    untargeted_markdown,
)
from recpoison.experiment.report_measures import standard_error as _se
from recpoison.experiment.run_selection import (
    RunSelection,
    merged_spec,
    runs_label,
    selected_runs,
)
from recpoison.experiment.spec import NO_ATTACK, Spec
from recpoison.experiment.store import Store

#: The dimensions that identify a report row, in display order.
DIMENSIONS = ("dataset", "victim", "attack", "knowledge", "n_fillers", "target_type", "size", "k")
#: The value columns of a report, in display order (optional ones only when present).
METRICS = (
    "hr_mean",
    "hr_se",
    "n_targets",
    "n_retrains",
    "n_fake",
    "filler_popularity",
    "surrogate",
    "surrogate_hr",
    "surrogate_hr_before",
    "surrogate_hr_poisoned",
    "rmse",
    "rmse_clean",
    "rmse_poisoned",
    "rmse_shift",
    "prediction_shift",
    "integrity_shift",
    "ttest_p",
    "detector",
    "fpr",
    "fnr",
    "hr_mean_detected",
    "hr_se_detected",
    *REMEDY_COLUMNS,
    *UNTARGETED_COLUMNS,
)
FORMATS = ("markdown", "csv", "json")


def build_report(store_path: str | Path, run: RunSelection = None) -> pd.DataFrame:
    """One row per (dataset, victim, attack, knowledge, n_fillers, target_type, size, k) of run
    ``run`` (default: the latest; several runs of one experiment: their cells together, see
    :mod:`~recpoison.experiment.run_selection`) with ``hr_mean``, ``hr_se``, ``n_targets``,
    ``n_retrains``, ``n_fake``, ``filler_popularity``, ``surrogate`` and ``surrogate_hr*``
    (attacks that report them), ``rmse`` and the Li et al. columns (explicit victims) and, with
    a detector, ``detector``, ``fpr``, ``fnr``, ``hr_mean_detected`` and ``hr_se_detected``
    (all of :data:`METRICS` that apply). See the module doc for the statistics."""
    with Store.open(store_path, create=False) as store:
        runs = selected_runs(store, run)
        spec = merged_spec(store, runs)
        cells = _cells(store, runs, "attack")
        results = _run_rows(store, runs, "results")
    if results.empty:
        return pd.DataFrame(columns=[*DIMENSIONS, "hr_mean", "hr_se", "n_targets", "n_retrains"])
    detected = results["hr_detected"].notna().any()
    table = []
    for (key, k), group in results.groupby(["cell_key", "k"], sort=False):
        labels, info = cells[key]
        row: dict[str, Any] = {**{d: labels.get(d) for d in DIMENSIONS}, "k": int(k)}
        row.update(_summary(group, "hr"))
        row["n_fake"] = info.get("n_fake", 0)
        row.update(_filler_popularity(info))
        row["surrogate"] = labels.get("surrogate")
        row.update(_surrogate_hr(info))
        if group["rmse"].notna().any():
            row["rmse"] = float(group["rmse"].mean())
        if "explicit" in info:
            row.update(_explicit(info["explicit"]))
        if detected:
            row["detector"] = labels.get("detector")
            per_target = group.groupby("target_index")[["fpr", "fnr"]].first()
            row["fpr"], row["fnr"] = per_target["fpr"].mean(), per_target["fnr"].mean()
            stats = _summary(group, "hr_detected")
            row["hr_mean_detected"], row["hr_se_detected"] = stats["hr_mean"], stats["hr_se"]
        row.update(measure_columns(info))
        table.append(row)
    frame = _expand_baseline(add_drops(pd.DataFrame(table)), spec)
    return _ordered(frame, spec)


def quality_report(store_path: str | Path, run: RunSelection = None) -> pd.DataFrame:
    """Leave-one-out HR@K / NDCG@K of each clean victim: mean and SE over its retrains."""
    with Store.open(store_path, create=False) as store:
        runs = selected_runs(store, run)
        cells = _cells(store, runs, "quality")
        quality = _run_rows(store, runs, "quality")
    table = []
    for key, group in quality.groupby("cell_key", sort=False):
        labels, _ = cells[key]
        n = len(group)
        table.append(
            {
                "dataset": labels["dataset"],
                "victim": labels["victim"],
                "k": int(group["k"].iloc[0]),
                "hr": group["hr"].mean(),
                "hr_se": _se(group["hr"].to_numpy()),
                "ndcg": group["ndcg"].mean(),
                "ndcg_se": _se(group["ndcg"].to_numpy()),
                "n_retrains": n,
                "users": int(group["users"].iloc[0]),
                "negatives": int(group["negatives"].iloc[0]),
            }
        )
    return pd.DataFrame(
        table,
        columns=[
            "dataset",
            "victim",
            "k",
            "hr",
            "hr_se",
            "ndcg",
            "ndcg_se",
            "n_retrains",
            "users",
            "negatives",
        ],
    )


def run_title(store_path: str | Path, run: RunSelection = None) -> str:
    """``name (run N, recpoison V)`` (``runs N, M, ...``) of the runs reported, for headings."""
    with Store.open(store_path, create=False) as store:
        runs = selected_runs(store, run)
        infos = [r for r in store.runs() if r["id"] in runs]
    versions = ", ".join(dict.fromkeys(info["recpoison_version"] for info in infos))
    return f"{infos[0]['name']} ({runs_label(runs)}, recpoison {versions})"


# -- statistics -------------------------------------------------------------------------------
def _summary(group: pd.DataFrame, column: str) -> dict[str, Any]:
    """hr_mean / hr_se over targets of the retrain-averaged values (see the module doc)."""
    values = group.dropna(subset=[column])
    per_target = values.groupby("target_index")[column].mean()
    n_targets = len(per_target)
    se = _se((per_target if n_targets > 1 else values[column]).to_numpy())
    return {
        "hr_mean": float(per_target.mean()) if n_targets else np.nan,
        "hr_se": se,
        "n_targets": n_targets,
        "n_retrains": int(group["retrain"].nunique()),
    }


def _explicit(info: dict[str, Any]) -> dict[str, float]:
    """Means of the Li et al. 2016 measurements of a cell (NaN where there are none)."""

    def mean(values: Any) -> float:
        array = np.asarray(values, dtype=float)
        return float(np.nanmean(array)) if np.isfinite(array).any() else np.nan

    clean = np.asarray(info["rmse_clean"], dtype=float)
    poisoned = np.asarray(info["rmse_poisoned"], dtype=float)
    return {
        "rmse_clean": mean(clean),
        "rmse_poisoned": mean(poisoned),
        "rmse_shift": mean(poisoned - clean) if clean.shape == poisoned.shape else np.nan,
        "prediction_shift": mean(info.get("prediction_shift", np.nan)),
        "integrity_shift": mean(info["integrity_shift"]),
        "ttest_p": mean(info["ttest_p"]),
    }


def _filler_popularity(info: dict[str, Any]) -> dict[str, float]:
    """Mean over targets of the fillers' popularity (see ``attacks.ratings.filler_popularity``)."""
    values = [
        item["filler_popularity"] for item in info.get("attack", []) if "filler_popularity" in item
    ]
    return {"filler_popularity": float(np.nanmean(values))} if values else {}


def _surrogate_hr(info: dict[str, Any]) -> dict[str, float]:
    """Means over targets of the surrogate's own HR_t reported by the attack (when it does):
    before the attack, after retraining it on the poisoned view (``surrogate_hr``) and, for
    attacks that poison-train it (their ``trace``), of the poison-trained model kept at the
    last step (``surrogate_hr_poisoned``)."""
    values: dict[str, list[float]] = {
        "surrogate_hr": [],
        "surrogate_hr_before": [],
        "surrogate_hr_poisoned": [],
    }
    for item in info.get("attack", []):
        value = item.get("surrogate_hr")
        if isinstance(value, dict):
            values["surrogate_hr_before"].append(value.get("before"))
            values["surrogate_hr"].append(value.get("after"))
        elif value is not None:
            values["surrogate_hr"].append(value)
        trace = item.get("trace")
        if trace:
            values["surrogate_hr_poisoned"].append(trace[-1]["hr"][trace[-1]["chosen_round"]])
    out = {}
    for name, numbers in values.items():
        numbers = [v for v in numbers if v is not None]
        if numbers:
            out[name] = float(np.mean(numbers))
    return out


# -- shaping ----------------------------------------------------------------------------------
def _cells(store: Store, runs: list[int], kind: str) -> dict[str, tuple[dict, dict]]:
    """Labels and info of the finished cells of ``kind`` in ``runs`` (a cell in several runs
    once, with the labels of its first run)."""
    _, rows = store.query(
        "SELECT c.key, rc.labels_json, c.info_json FROM cells c JOIN run_cells rc "
        f"ON rc.cell_key = c.key WHERE rc.run_id IN ({_placeholders(runs)}) AND c.kind = ? "
        "AND c.status = 'done' ORDER BY rc.run_id",
        (*runs, kind),
    )
    cells: dict[str, tuple[dict, dict]] = {}
    for key, labels, info in rows:
        cells.setdefault(key, (json.loads(labels), json.loads(info or "{}")))
    return cells


def _run_rows(store: Store, runs: list[int], table: str) -> pd.DataFrame:
    """Every row of ``table`` (``results`` or ``quality``) from the cells of ``runs``, each
    cell's rows once."""
    columns, rows = store.query(
        f"SELECT t.* FROM {table} t WHERE t.cell_key IN "
        f"(SELECT cell_key FROM run_cells WHERE run_id IN ({_placeholders(runs)}))",
        tuple(runs),
    )
    return pd.DataFrame(rows, columns=columns)


def _placeholders(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _expand_baseline(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """Repeat each ``none`` row in every size, knowledge and filler column of the spec."""
    is_none = frame["attack"] == NO_ATTACK
    attacked = frame[~is_none]
    if not is_none.any() or attacked.empty:
        return frame
    combos = attacked[["size", "knowledge", "n_fillers"]].drop_duplicates()
    baseline = frame[is_none].drop(columns=["size", "knowledge", "n_fillers"])
    return pd.concat([baseline.merge(combos, how="cross"), attacked], ignore_index=True)


def _ordered(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """Rows in spec order (none first), dimension columns first."""
    order = {
        "dataset": [d.display for d in spec.datasets],
        "victim": [v.display for v in spec.victims],
        "attack": [NO_ATTACK, *[a.display for a in spec.attacks if a.name != NO_ATTACK]],
        "target_type": [t.display for t in spec.targets],
        "knowledge": [k.display for k in spec.knowledge],
    }
    frame = frame.copy()
    frame["n_fillers"] = frame["n_fillers"].astype("Int64")
    keys = frame[list(DIMENSIONS)].copy()
    for column, values in order.items():
        keys[column] = keys[column].map({v: i for i, v in enumerate(values)})
    frame = frame.loc[keys.sort_values(list(DIMENSIONS), na_position="first").index]
    rest = [c for c in METRICS if c in frame.columns]
    return frame[[*DIMENSIONS, *rest]].reset_index(drop=True)


# -- rendering --------------------------------------------------------------------------------
def to_markdown(
    report: pd.DataFrame, quality: pd.DataFrame | None = None, title: str | None = None
) -> str:
    """Markdown tables shaped like the paper's: rows attacks, columns target type x the swept
    dimension (attack size; else K, filler count or knowledge), one table per remaining
    combination. Cells read ``mean ± SE``."""
    parts = [f"## {title}", ""] if title else []
    if report.empty:
        return "\n".join([*parts, "(no finished cells yet)", ""])
    if "train_accuracy" in report.columns:  # edge attacks: no targets, Tables 4.2-4.18
        return "\n".join([*parts, *untargeted_markdown(report), *_quality_lines(quality)])
    column_dim = _column_dimension(report)
    parts += _tables(report, column_dim, "hr_mean", "hr_se", "HR_t@{k} (mean ± SE over targets)")
    parts += _attack_diagnostics(report, column_dim)
    if "fnr" in report.columns:
        attacked = _one_k(report[report["attack"] != NO_ATTACK], column_dim)  # not K-dependent
        both = attacked.assign(
            fpr_fnr=[
                f"{_cell(a, None)} / {_cell(b, None)}"
                for a, b in zip(attacked["fpr"], attacked["fnr"], strict=True)
            ]
        )
        parts += _tables(both, column_dim, "fpr_fnr", None, "FPR / FNR of {detector}")
        parts += _tables(attacked, column_dim, "fpr", None, "FPR of {detector}")
        parts += _tables(attacked, column_dim, "fnr", None, "FNR of {detector}")
        baseline = report["attack"] == NO_ATTACK  # no attack, no detector (Table IX)
        shown = report.copy()
        shown.loc[baseline, "hr_mean_detected"] = shown.loc[baseline, "hr_mean"]
        shown.loc[baseline, "hr_se_detected"] = shown.loc[baseline, "hr_se"]
        parts += _tables(
            shown,
            column_dim,
            "hr_mean_detected",
            "hr_se_detected",
            "HR_t@{k} under detection by {detector}",
        )
    if "rmse_shift" in report.columns:
        single = _one_k(report, column_dim)
        explicit = [
            ("rmse_shift", "RMSE shift on held-out ratings (poisoned − clean)"),
            ("rmse_clean", "RMSE of the clean victim"),
            (
                "prediction_shift",
                "Availability: RMS change of predictions on unrated entries (Li §5, fn. 4)",
            ),
            ("integrity_shift", "Integrity shift: change of the targets' mean predicted rating"),
            ("ttest_p", "t-test p-value of fake vs normal users (small: detectable)"),
        ]
        shown = single.assign(  # p-values span many orders of magnitude
            ttest_p=[_cell(p, None) if pd.isna(p) else f"{p:.2g}" for p in single["ttest_p"]]
        )
        for column, caption in explicit:
            if single[column].notna().any():
                parts += _tables(shown, column_dim, column, None, caption)
    parts += remedy_markdown(report)
    return "\n".join([*parts, *_quality_lines(quality)])


def _quality_lines(quality: pd.DataFrame | None) -> list[str]:
    """The clean victims' leave-one-out quality table (empty without quality rows)."""
    if quality is None or quality.empty:
        return []
    parts = [
        "### Clean victim quality (leave-one-out, sampled negatives)",
        "",
        "| dataset | victim | HR@10 | NDCG@10 | retrains | negatives |",
        "|---|---|---|---|---|---|",
    ]
    for row in quality.itertuples():
        parts.append(
            f"| {row.dataset} | {row.victim} | {_cell(row.hr, row.hr_se)} | "
            f"{_cell(row.ndcg, row.ndcg_se)} | {row.n_retrains} | {row.negatives} |"
        )
    parts.append("")
    return parts


#: Per-attack diagnostics rendered under the HR_t table when some attack reports them.
DIAGNOSTICS = (
    (
        "surrogate_hr_poisoned",
        "HR_t@{k} the attack's poison-trained surrogate reached (its own estimate of success)",
    ),
    ("surrogate_hr", "HR_t@{k} of the attack's own surrogate, retrained on its poisoned view"),
    ("filler_popularity", "Mean popularity (ratings in the attacker's view) of the fillers"),
)


def _attack_diagnostics(report: pd.DataFrame, column_dim: str) -> list[str]:
    """Tables of the :data:`DIAGNOSTICS` columns, for the attacks that report them."""
    single = _one_k(report, column_dim)
    parts: list[str] = []
    for column, caption in DIAGNOSTICS:
        if column in single.columns and single[column].notna().any():
            reported = single.groupby("attack")[column].transform(lambda v: v.notna().any())
            rows = single[reported.astype(bool)]
            parts += _tables(
                rows.assign(**{column: rows[column].astype(float)}),
                column_dim,
                column,
                None,
                caption,
            )
    return parts


def _one_k(report: pd.DataFrame, column_dim: str) -> pd.DataFrame:
    """The rows of the smallest K, for values that do not depend on K (unless K is the swept
    column dimension)."""
    return report if column_dim == "k" else report[report["k"] == report["k"].min()]


def _column_dimension(report: pd.DataFrame) -> str:
    for dim in ("size", "k", "n_fillers", "knowledge"):
        if report[dim].nunique(dropna=False) > 1:
            return dim
    return "size"


def _tables(
    report: pd.DataFrame, column_dim: str, value: str, error: str | None, caption: str
) -> list[str]:
    other = [
        d
        for d in ("dataset", "victim", "knowledge", "n_fillers", "k", "size")
        if d != column_dim
        and (d in ("dataset", "victim", "k") or report[d].nunique(dropna=False) > 1)
    ]
    lines: list[str] = []
    for values, group in report.groupby(other, sort=False, dropna=False):
        context = dict(zip(other, values if isinstance(values, tuple) else (values,), strict=True))
        detector = group["detector"].dropna().iloc[0] if "detector" in group else ""
        heading = " · ".join(_label(d, context[d]) for d in other if d != "k")
        lines += [
            f"### {heading} — " + caption.format(k=context.get("k", "K"), detector=detector),
            "",
        ]
        headers = _headers(group, column_dim)
        lines.append(
            "| attack | " + " | ".join(f"{t} {_label(column_dim, c)}" for t, c in headers) + " |"
        )
        lines.append("|---" * (len(headers) + 1) + "|")
        for attack, rows in group.groupby("attack", sort=False):
            by = {(r["target_type"], r[column_dim]): r for _, r in rows.iterrows()}
            cells = [
                _cell(by[h][value], by[h][error] if error else None) if h in by else ""
                for h in headers
            ]
            lines.append(f"| {attack} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _headers(group: pd.DataFrame, column_dim: str) -> list[tuple[Any, Any]]:
    """(target type, column value) pairs: target types in order of appearance, numeric column
    values (size, K, filler count) sorted whatever order the rows come in."""
    pairs = group[["target_type", column_dim]].drop_duplicates()
    if pd.api.types.is_numeric_dtype(pairs[column_dim]):
        pairs = pairs.sort_values(column_dim, kind="stable")
    types = list(dict.fromkeys(group["target_type"]))
    return sorted(pairs.itertuples(index=False, name=None), key=lambda pair: types.index(pair[0]))


def _label(dim: str, value: Any) -> str:
    if dim == "size":
        return f"{float(value) * 100:g}%"
    if dim == "k":
        return f"K={value}"
    if dim == "n_fillers":
        return "fillers=default" if pd.isna(value) else f"{value} fillers"
    if dim == "knowledge":
        return f"knowledge {value}"
    return str(value)


def _cell(mean: float | str, se: float | None) -> str:
    if isinstance(mean, str):
        return mean
    if mean is None or pd.isna(mean):
        return "–"
    if se is None or pd.isna(se):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {se:.4f}"


def write_report(
    report: pd.DataFrame,
    fmt: str,
    out: str | Path | None = None,
    quality: pd.DataFrame | None = None,
    title: str | None = None,
) -> str:
    """Render ``report`` as markdown, csv or json (a list of objects); write it to ``out`` when
    given and return the text."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "markdown":
        text = to_markdown(report, quality, title)
    elif fmt == "csv":
        text = report.to_csv(index=False)
    else:
        text = json.dumps(json.loads(report.to_json(orient="records")), indent=2) + "\n"
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text
