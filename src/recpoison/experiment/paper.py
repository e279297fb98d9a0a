"""The papers' published figures beside the measured ones (``recpoison report --paper``).

Published figures are package data, one YAML file per source paper in
``recpoison/presets/published/`` (Huang et al. 2021, Li et al. 2016, Fang et al. 2020, Aravind
2022), transcribed from the seed texts with each row's line in the seed. A file maps the paper's
dataset names to recpoison dataset names (``datasets``) and the paper's attack labels to
recpoison attacks (``attacks``: a registry name, or ``{name, params}`` when the goal matters,
e.g. Li's PGA availability vs integrity); each of its ``tables`` names the presets it belongs
to, the report column it is compared with (``metric``), whether a stronger attack has a
``higher`` or ``lower`` value (``stronger``), the dimensions fixed for the whole table
(``where``: victim, k, size, target_type, knowledge, n_fillers, metric; a string ending in ``*``
is a prefix) and one entry per column (``columns``), and one row per (paper dataset, attack)
with a value per column (``null`` where the extracted text is unreadable); ``value_from`` names
another report column for one row (Huang's Table IX: its None row is the victim without
detector). A table of ``kind: ranks`` holds orderings the paper states in words about a figure
whose values were not extracted (1 = strongest; equal ranks where the paper does not order).
``scale`` converts printed values into recpoison's units (percent -> fraction). A dimension a
table leaves open matches every measured value; a table that does not fix K is compared at the
smallest K measured.

Alignment. Each measured dataset is compared with the paper dataset the user picks
(``paper_dataset``), else with the paper dataset whose recpoison names contain it, else with
the first dataset of the selected tables (``paper_dataset_why`` says which). A measured row
matches a published cell when its attack is the cell's recpoison attack (the spec's attack
name, and the params the mapping names, each resolved to the attack's default when the spec
leaves it out) and every dimension the cell fixes equals the row's (sizes within 1 %).
Several measured attacks may match one paper row (two labels of one attack): each is
compared.

Ordering. Per column (paper and paper dataset, measured dataset, victim, metric and every
dimension but the attack: tables of one paper with the same settings, such as Fang's Table 4
and Table 1, form one column), over the attacks present in both (``none`` excluded), Kendall's
tau-b between the paper's values and ours (``scipy.stats.kendalltau``; for ranks, between the
paper's order and ours), and whether our strongest attack is among the paper's strongest
(undecided when two of ours tie at the top or fewer than two attacks are compared). Tau needs
two attacks and is undefined (NaN) when either side is constant.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import kendalltau

from recpoison.errors import ConfigError
from recpoison.experiment.report import DIMENSIONS, write_report
from recpoison.experiment.run_selection import (
    RunSelection,
    merged_spec,
    runs_label,
    selected_runs,
)
from recpoison.experiment.spec import (
    NO_ATTACK,
    ComponentSpec,
    Spec,
    attack_class_or_none,
    goal_of,
)
from recpoison.experiment.store import Store

PUBLISHED_PACKAGE = "recpoison.presets"
PUBLISHED_FOLDER = "published"
#: The dimensions a published cell may fix (besides the dataset and the attack).
CELL_DIMENSIONS = ("metric", "victim", "k", "size", "target_type", "knowledge", "n_fillers")
#: The standard-error column of each metric that has one under another name.
SE_COLUMNS = {"hr_mean": "hr_se", "hr_mean_detected": "hr_se_detected"}
#: The columns of :func:`published_cells`.
CELL_COLUMNS = (
    "paper",
    "table",
    "kind",
    "stronger",
    "dataset",
    "attack",
    "attack_name",
    "attack_params",
    *CELL_DIMENSIONS,
    "value_from",
    "value",
)
#: The columns of a comparison (``compare_with_paper``), before the ordering columns.
COMPARISON_COLUMNS = (
    "paper",
    "table",
    "paper_dataset",
    "paper_dataset_why",
    *DIMENSIONS,
    "metric",
    "value",
    "se",
    "paper_attack",
    "paper_value",
    "paper_kind",
    "stronger",
)
#: The ordering columns added to every comparison row of a column (``ordering_agreement``).
ORDER_COLUMNS = ("tau", "n_attacks", "paper_top", "our_top", "top_agrees")
#: A column of a comparison: everything but the attack and the values.
_COLUMN_KEY = (
    "paper",
    "paper_kind",
    "paper_dataset",
    "dataset",
    "victim",
    "metric",
    "knowledge",
    "n_fillers",
    "target_type",
    "size",
    "k",
)


@dataclass(frozen=True)
class PaperDatasets:
    """The paper datasets of the selected tables, in order, with their recpoison names."""

    names: dict[str, list[str]]

    def for_measured(self, measured: str, chosen: str | None) -> tuple[str, str]:
        """The paper dataset compared with measured dataset ``measured``, and why: the user's
        ``chosen`` one, else the one ``measured`` is, else the first."""
        if chosen is not None:
            return chosen, "chosen with --paper-dataset"
        for name, aliases in self.names.items():
            if measured.lower() in aliases:
                return name, "the same dataset"
        return next(iter(self.names)), "the paper's first: the run's dataset is none of the paper's"


# -- the published figures --------------------------------------------------------------------
def published_papers() -> dict[str, dict[str, Any]]:
    """``{paper: raw YAML mapping}`` of every published-figures file, by file name."""
    folder = resources.files(PUBLISHED_PACKAGE).joinpath(PUBLISHED_FOLDER)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return {f.name.removesuffix(".yaml"): yaml.safe_load(f.read_text()) for f in files}


def presets_with_figures() -> list[str]:
    """The preset names some published table belongs to, sorted."""
    return sorted(
        {p for paper in published_papers().values() for t in paper["tables"] for p in t["presets"]}
    )


def published_cells(source: str) -> tuple[pd.DataFrame, PaperDatasets]:
    """Every published figure of ``source`` (a preset name, or ``paper:table`` such as
    ``huang2021:IV``) as one row per (table, dataset, attack, column) with :data:`CELL_COLUMNS`,
    and the paper datasets of those tables. ConfigError when nothing is published for it."""
    papers = published_papers()
    paper_name, _, table_id = source.partition(":")
    selected = [
        (name, paper, table)
        for name, paper in papers.items()
        for table in paper["tables"]
        if (table_id and name == paper_name and table["id"] == table_id)
        or (not table_id and source in table["presets"])
    ]
    if not selected and table_id and paper_name in papers:
        ids = ", ".join(t["id"] for t in papers[paper_name]["tables"])
        raise ConfigError(f"{paper_name} has no table {table_id!r}; its tables: {ids}")
    if not selected:
        raise ConfigError(
            f"no published figures for {source!r}; presets with them: "
            f"{', '.join(presets_with_figures())} (pick one with --paper-source), or a table "
            f"as PAPER:TABLE of {', '.join(papers)}"
        )
    cells, datasets = [], {}
    for name, paper, table in selected:
        for row in table["rows"]:
            datasets.setdefault(row["dataset"], paper["datasets"][row["dataset"]])
        cells += list(_table_cells(name, paper, table))
    frame = pd.DataFrame(cells, columns=list(CELL_COLUMNS))
    return frame, PaperDatasets({k: [a.lower() for a in v] for k, v in datasets.items()})


def _table_cells(paper_name: str, paper: dict[str, Any], table: dict[str, Any]):
    scale = float(table.get("scale", 1.0))
    kind = table.get("kind", "values")
    for row in table["rows"]:
        reference = paper["attacks"][row["attack"]]
        if isinstance(reference, str):
            reference = {"name": reference}
        for column, value in zip(table["columns"], row["values"], strict=True):
            if value is None:
                continue
            fixed = {"metric": table.get("metric"), **table["where"], **column}
            yield {
                "paper": paper_name,
                "table": table["id"],
                "kind": kind,
                "stronger": table["stronger"],
                "dataset": row["dataset"],
                "attack": row["attack"],
                "attack_name": reference and reference["name"],
                "attack_params": (reference or {}).get("params", {}),
                **{d: fixed.get(d) for d in CELL_DIMENSIONS},
                "value_from": row.get("value_from", fixed.get("metric")),
                "value": float(value) if kind == "ranks" else float(value) * scale,
            }


class NoMeasuredRowMatches(ConfigError):
    """The report has no attack row (besides ``none``) that a published figure describes."""


# -- alignment --------------------------------------------------------------------------------
def compare_with_paper(
    report: pd.DataFrame, spec: Spec, source: str, paper_dataset: str | None = None
) -> pd.DataFrame:
    """Measured report rows beside the published figures of ``source`` (see the module doc),
    one row per (published cell, matching measured row) with :data:`COMPARISON_COLUMNS` and the
    ordering columns of :func:`ordering_agreement`. :class:`NoMeasuredRowMatches` when no attack
    (besides ``none``) matches."""
    cells, datasets = published_cells(source)
    if paper_dataset is not None and paper_dataset not in datasets.names:
        raise ConfigError(
            f"--paper-dataset {paper_dataset!r} is not in the published tables of {source!r}; "
            f"choose one of: {', '.join(datasets.names)}"
        )
    attacks = {a.display: a for a in spec.attacks}
    records = []
    for (dataset, column), rows in _measured(report, cells).items():
        chosen, why = datasets.for_measured(dataset, paper_dataset)
        candidates = cells[(cells["dataset"] == chosen) & (cells["value_from"] == column)]
        for cell in candidates.itertuples(index=False):
            for row in rows:
                if _attack_matches(attacks.get(row["attack"]), cell) and _fixed_match(cell, row):
                    records.append(
                        {**_record(cell, row), "paper_dataset": chosen, "paper_dataset_why": why}
                    )
    if not any(record["attack"] != NO_ATTACK for record in records):
        sizes = sorted({f"{size:.4g}" for size in cells["size"].dropna()}, key=float)
        ks = sorted({int(k) for k in cells["k"].dropna()})
        raise NoMeasuredRowMatches(
            f"no measured row matches the published figures of {source!r}: they are for "
            f"attacks {', '.join(sorted(set(cells['attack_name'].dropna())))}; sizes "
            f"{', '.join(sizes)}; K {ks or 'any'}; report columns "
            f"{', '.join(sorted(set(cells['value_from'])))}"
        )
    return ordering_agreement(pd.DataFrame(records, columns=list(COMPARISON_COLUMNS)))


def _measured(report: pd.DataFrame, cells: pd.DataFrame) -> dict[tuple[str, str], list[dict]]:
    """``{(dataset, report column): rows}`` of the report rows a published figure could
    match, at the smallest K for columns the tables compare without fixing K."""
    smallest_k = report["k"].min()
    measured: dict[tuple[str, str], list[dict]] = {}
    for column in cells["value_from"].dropna().unique():
        if column not in report.columns:
            continue
        k_free = cells.loc[cells["value_from"] == column, "k"].isna().all()
        rows = report[report["k"] == smallest_k] if k_free else report
        for dataset, group in rows.groupby("dataset", sort=False):
            measured[dataset, column] = group.to_dict("records")
    return measured


def _attack_matches(attack: ComponentSpec | None, cell: Any) -> bool:
    if attack is None or attack.name != cell.attack_name:
        return False
    return all(_param(attack, name) == value for name, value in cell.attack_params.items())


def _param(attack: ComponentSpec, name: str) -> Any:
    """The value ``attack`` runs with for constructor parameter ``name``: the spec's, else the
    default (for ``goal``, the class's goal when the constructor has none)."""
    if name in attack.params:
        return attack.params[name]
    if name == "goal":
        return goal_of(attack)
    cls = attack_class_or_none(attack.name)
    parameter = inspect.signature(cls.__init__).parameters.get(name) if cls else None
    return None if parameter is None else parameter.default


def _fixed_match(cell: Any, row: dict[str, Any]) -> bool:
    for dim in CELL_DIMENSIONS[1:]:
        fixed = getattr(cell, dim)
        if _missing(fixed):
            continue
        actual = row.get(dim)
        if _missing(actual):
            return False
        if dim == "size":
            if not math.isclose(float(actual), float(fixed), rel_tol=0.01, abs_tol=1e-12):
                return False
        elif dim == "k":  # a float column where another table of the paper leaves K open
            if float(actual) != float(fixed):
                return False
        elif isinstance(fixed, str) and fixed.endswith("*"):
            if not str(actual).startswith(fixed[:-1]):
                return False
        elif str(actual) != str(fixed):
            return False
    return True


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _record(cell: Any, row: dict[str, Any]) -> dict[str, Any]:
    column = cell.value_from
    se_column = SE_COLUMNS.get(column, f"{column}_se")
    return {
        "paper": cell.paper,
        "table": cell.table,
        **{d: row.get(d) for d in DIMENSIONS},
        "metric": cell.metric,
        "value": _float(row.get(column)),
        "se": _float(row.get(se_column)),
        "paper_attack": cell.attack,
        "paper_value": cell.value,
        "paper_kind": cell.kind,
        "stronger": cell.stronger,
    }


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


# -- ordering ---------------------------------------------------------------------------------
def ordering_agreement(comparison: pd.DataFrame) -> pd.DataFrame:
    """``comparison`` with, on every row, its column's Kendall tau-b between the paper's and
    our values over the attacks present in both (``none`` excluded), the number of those
    attacks, the paper's and our strongest attacks and whether they agree (module doc)."""
    frame = comparison.copy()
    for column in ORDER_COLUMNS:
        frame[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    keys = [c for c in _COLUMN_KEY if c in frame.columns]
    for _, group in frame.groupby(keys, sort=False, dropna=False):
        stats = _column_order(group)
        for column, value in stats.items():
            frame.loc[group.index, column] = value
    return frame


def _column_order(group: pd.DataFrame) -> dict[str, Any]:
    attacked = group[(group["attack"] != NO_ATTACK) & group["value"].notna()]
    higher = group["stronger"].iloc[0] == "higher"
    ranks = group["paper_kind"].iloc[0] == "ranks"
    # a paper rank of 1 is the strongest: turn ranks into scores in the metric's direction
    paper = -attacked["paper_value"] if ranks and higher else attacked["paper_value"]
    ours = attacked["value"]
    tau = np.nan
    if len(attacked) >= 2:
        tau = float(kendalltau(paper.to_numpy(), ours.to_numpy()).statistic)
    paper_best = paper.max() if higher else paper.min()
    paper_top = sorted(set(attacked.loc[paper == paper_best, "attack"]))
    our_best = ours.max() if higher else ours.min()
    our_top = sorted(set(attacked.loc[ours == our_best, "attack"]))
    decided = attacked["attack"].nunique() >= 2 and len(our_top) == 1 and bool(paper_top)
    agrees = our_top[0] in paper_top if decided else None
    return {
        "tau": None if np.isnan(tau) else round(tau, 4),
        "n_attacks": int(attacked["attack"].nunique()),
        "paper_top": ", ".join(paper_top),
        "our_top": ", ".join(our_top),
        "top_agrees": agrees,
    }


# -- the report -------------------------------------------------------------------------------
def paper_comparison(
    report: pd.DataFrame,
    store_path: str | Path,
    run: RunSelection = None,
    source: str | None = None,
    paper_dataset: str | None = None,
) -> pd.DataFrame:
    """The comparison of ``report`` (``build_report`` of run(s) ``run`` of a store, default: the
    latest) with the published figures of ``source`` (default: the runs' spec name, i.e. their
    preset)."""
    with Store.open(store_path, create=False) as store:
        latest = run is None
        runs = selected_runs(store, run)
        spec = merged_spec(store, runs)
        others = [r["id"] for r in store.runs() if r["id"] not in runs]
    try:
        return compare_with_paper(report, spec, source or spec.name, paper_dataset)
    except NoMeasuredRowMatches as error:
        if not (latest and others):
            raise
        # a second process on the same store (one attack, say) is the latest run; the run
        # that expanded every attack is an earlier one
        raise ConfigError(
            f"{error} (in {runs_label(runs)}, the latest; this store also holds run(s) "
            f"{', '.join(map(str, others))}: pick them with --run, once per run)"
        ) from None


def paper_markdown(comparison: pd.DataFrame, title: str | None = None) -> str:
    """Markdown tables: per (paper, paper dataset, measured dataset, victim, metric), rows
    attacks, columns the dimensions that vary; cells ``ours ± SE (paper X)``; then a
    Kendall tau row and a row saying whether the strongest attack agrees."""
    parts = [f"## {title} — beside the published figures", ""] if title else []
    heading_keys = ["paper", "paper_kind", "paper_dataset", "dataset", "victim", "metric"]
    for values, group in comparison.groupby(heading_keys, sort=False, dropna=False):
        context = dict(zip(heading_keys, values, strict=True))
        varying = [
            d
            for d in ("target_type", "knowledge", "n_fillers", "size", "k")
            if group[d].nunique(dropna=False) > 1
        ] or [d for d in ("target_type", "size") if group[d].notna().all()]
        fixed = [
            d
            for d in ("target_type", "knowledge", "n_fillers", "size", "k")
            if d not in varying and group[d].notna().any()
        ]
        kind = group["paper_kind"].iloc[0]
        tables = ", ".join(dict.fromkeys(group["table"]))
        parts += [
            f"### {context['paper']} {tables} ({context['paper_dataset']}) beside "
            f"{context['dataset']} · {context['victim']} — {context['metric']}"
            + "".join(f" · {_label(d, group[d].iloc[0])}" for d in fixed),
            "",
        ]
        parts += [
            f"Paper dataset {context['paper_dataset']}: {group['paper_dataset_why'].iloc[0]}."
        ]
        if kind == "ranks":
            parts += ["The paper states an order, not values: paper rank 1 is the strongest."]
        parts.append("")
        columns = list(dict.fromkeys(map(tuple, group[varying].to_numpy().tolist())))
        header = [
            " ".join(_label(d, v) for d, v in zip(varying, c, strict=True))
            or group["metric"].iloc[0]
            for c in columns
        ]
        parts.append("| attack | " + " | ".join(header) + " |")
        parts.append("|---" * (len(columns) + 1) + "|")
        for attack, rows in group.groupby("attack", sort=False):
            by = {tuple(r[d] for d in varying): r for _, r in rows.iterrows()}
            cells = [_cell(by[c]) if c in by else "" for c in columns]
            parts.append(f"| {attack} | " + " | ".join(cells) + " |")
        first = {tuple(r[d] for d in varying): r for _, r in group.iterrows()}
        taus = [_tau(first[c]) for c in columns]
        tops = [_top(first[c]) for c in columns]
        parts.append("| Kendall τ (paper order) | " + " | ".join(taus) + " |")
        parts.append("| strongest attack agrees | " + " | ".join(tops) + " |")
        parts.append("")
    return "\n".join(parts)


def write_paper_report(
    comparison: pd.DataFrame, fmt: str, out: str | Path | None = None, title: str | None = None
) -> str:
    """Render a comparison as markdown (:func:`paper_markdown`), csv or json (one object per
    compared row); write it to ``out`` when given and return the text."""
    if fmt != "markdown":
        return write_report(comparison, fmt, out)
    text = paper_markdown(comparison, title)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text


def _label(dim: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{dim}=default"
    if dim == "size":
        return f"{float(value) * 100:g}%"
    if dim == "k":
        return f"K={int(value)}"
    if dim == "n_fillers":
        return f"{int(value)} fillers"
    return str(value)


def _cell(row: pd.Series) -> str:
    ours = "–" if pd.isna(row["value"]) else f"{row['value']:.4f}"
    if not pd.isna(row["se"]):
        ours += f" ± {row['se']:.4f}"
    if row["paper_kind"] == "ranks":
        return f"{ours} (paper rank {int(row['paper_value'])})"
    paper = row["paper_value"]
    return (
        f"{ours} (paper {paper:.4f})" if round(paper, 4) == paper else f"{ours} (paper {paper:.6g})"
    )


def _tau(row: pd.Series) -> str:
    attacks = f"{row['n_attacks']} attack" + ("s" if row["n_attacks"] != 1 else "")
    return f"– ({attacks})" if row["tau"] is None else f"{row['tau']:+.2f} ({attacks})"


def _top(row: pd.Series) -> str:
    if row["n_attacks"] < 2:
        return "–"
    if row["top_agrees"] is None:
        return f"undecided (ours: {row['our_top'] or '–'}; paper: {row['paper_top'] or '–'})"
    mark = "yes" if row["top_agrees"] else "no"
    return f"{mark} (ours: {row['our_top']}; paper: {row['paper_top']})"
