"""report: compare the run's models and write the run's summary, ``results/report/summary.json``, last.

Models and baselines are ranked, and ``best_model`` named, by a validation score (``report.select``,
macro F1 by default): choosing on the test split would flatter the chosen, so test only reports.

``results/report/``: ``comparison.csv``, one row per trained model and per scikit-learn baseline
(test accuracy, macro and weighted F1; the same on valid; parameters, train time, training
images/s), best on valid first, and ``comparison.png``: the scores side by side, and accuracy
against train time. ``summary.json``: JSON with the headline (the model chosen and on what, its
test scores beside the best baseline's, images kept, removed and flagged by reason, where the
galleries are), the headline metrics, the data accounting (images in, rejected, removed by
cleaning, kept per split) and where every artefact is. ``headline.rst``: the headline as the first
page of Snakemake's HTML report (``snakemake --report``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from specimen import figures
from specimen.artefacts import atomic_file, write_csv, write_json

COLUMNS = [
    "name",
    "kind",
    "model",
    "input",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "valid_accuracy",
    "valid_macro_f1",
    "valid_weighted_f1",
    "parameters",
    "epochs",
    "train_seconds",
    "images_per_second",
]


def report(
    models: list[str],
    evaluation: Path,
    model_dirs: Path,
    processed: Path,
    clean_dir: Path,
    raw: Path,
    out_dir: Path,
    summary_paths: list[Path],
    baselines: Path | None = None,
    explain: Path | None = None,
    select: str = "macro_f1",
) -> dict:
    table = comparison(models, evaluation, model_dirs, baselines, select)
    write_csv(out_dir / "comparison.csv", table)
    figures.save(figures.comparison(table), out_dir / "comparison.png")
    trained = table[table.kind == "keras"]
    scores = ("accuracy", "macro_f1", "weighted_f1")
    valid = tuple(f"valid_{k}" for k in scores)

    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    rejects = pd.read_csv(processed / "rejects.csv", keep_default_na=False)
    removed = pd.read_csv(clean_dir / "removed.csv", keep_default_na=False)
    kept = pd.read_csv(clean_dir / "index.csv", keep_default_na=False)
    clean_summary = json.loads((clean_dir / "summary.json").read_text())
    summary = {
        "headline": headline(trained, table[table.kind == "baseline"], select, clean_summary, clean_dir),
        "dataset": json.loads((raw / "source.json").read_text()),
        "best_model": trained.iloc[0].model,
        "chosen_on": f"valid {select}",
        "models": {r["model"]: {k: _num(r[k]) for k in scores + valid} for r in trained.to_dict("records")},
        "baselines": {
            r["name"]: {k: _num(r[k]) for k in scores + valid}
            for r in table[table.kind == "baseline"].to_dict("records")
        },
        "images": {
            "source_files": len(index) + len(rejects),
            "rejected": rejects.reason.str.split(":").str[0].value_counts().to_dict(),
            "removed": removed.reason.value_counts().to_dict(),
            "kept_per_split": kept.split.value_counts().to_dict(),
        },
        "artefacts": {
            "manifest": "data/interim/manifest.csv",
            "processed": str(processed),
            "clean": str(clean_dir),
            "models": {m: str(model_dirs / m / "model.keras") for m in models},
            "evaluation": {m: str(evaluation / m) for m in models},
            "explain": {m: str(explain / m) for m in models} if explain is not None else None,
            "baselines": str(baselines) if baselines is not None else None,
            "comparison": str(out_dir / "comparison.csv"),
        },
    }
    with atomic_file(out_dir / "headline.rst") as tmp:
        tmp.write_text(headline_rst(summary["headline"]))
    for path in summary_paths:
        write_json(path, summary)  # the same bytes at each (results/all too, its old name, until 0.3)
    return summary


def _num(value):
    """A table cell as JSON has it: NaN (no validation split) as null."""
    return None if pd.isna(value) else value


def headline(trained: pd.DataFrame, baselines: pd.DataFrame, select: str, clean: dict, clean_dir: Path) -> dict:
    """What a reader wants first: the model chosen and on what, its test scores beside the best
    baseline's (chosen the same way), and what cleaning kept, removed and flagged, by reason."""
    best = trained.iloc[0]
    line = {
        "chosen": best.model,
        "chosen_on": f"valid {select}",
        "valid": _num(best[f"valid_{select}"]),
        "test_accuracy": _num(best.accuracy),
        "test_macro_f1": _num(best.macro_f1),
    }
    if len(baselines):
        top = baselines.iloc[0]
        line["best_baseline"] = {
            "name": top["name"],
            "valid": _num(top[f"valid_{select}"]),
            "test_accuracy": _num(top.accuracy),
            "test_macro_f1": _num(top.macro_f1),
        }
    gallery = clean_dir / "gallery"
    line["images"] = {
        "kept": clean["kept"],
        "removed": clean["removed"],
        "removed_by_reason": clean["removed_by_reason"],
        "flagged_by_kind": clean["flagged_by_kind"],
        "label_issues": clean.get("label_issues", {}).get("found", 0),
        "galleries": {p.stem: str(p) for p in sorted(gallery.glob("*.png"))},
    }
    return line


def headline_rst(h: dict) -> str:
    """The headline as reStructuredText, the first page of Snakemake's report (links to the
    galleries: Snakemake makes each result's file name a link target)."""

    def pct(x):
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        "Headline",
        "========",
        "",
        f"**{h['chosen']}** was chosen on its {h['chosen_on']} ({pct(h['valid'])}). On the test split: "
        f"accuracy **{pct(h['test_accuracy'])}**, macro F1 **{pct(h['test_macro_f1'])}**.",
        "",
    ]
    if "best_baseline" in h:
        b = h["best_baseline"]
        lines += [
            f"The best baseline, chosen the same way, is {b['name']} ({pct(b['valid'])} on valid): test accuracy "
            f"{pct(b['test_accuracy'])}, macro F1 {pct(b['test_macro_f1'])}.",
            "",
        ]
    i = h["images"]
    removed = ", ".join(f"{r} {n}" for r, n in sorted(i["removed_by_reason"].items())) or "none"
    flagged = ", ".join(f"{k} {n}" for k, n in sorted(i["flagged_by_kind"].items())) or "none"
    lines += [
        f"Cleaning kept **{i['kept']}** images and removed **{i['removed']}** ({removed}). Flagged and kept: {flagged}.",
        "",
    ]
    if i["galleries"]:
        links = ", ".join(f"{name}.png_" for name in i["galleries"])  # each result's file name is a target
        lines += [f"Galleries (in Data_): {links}.", ""]
    lines += [".. include:: workflow/report/workflow.rst", ""]
    return "\n".join(lines)


def comparison(
    models: list[str], evaluation: Path, model_dirs: Path, baselines: Path | None, select: str = "macro_f1"
) -> pd.DataFrame:
    """One row per trained model (its metrics.json and meta.json) and per baseline (summary.csv),
    ranked by the validation score `select` (then the name); test scores only report."""
    rows = []
    for name in models:
        metrics = json.loads((evaluation / name / "metrics.json").read_text())
        meta = json.loads((model_dirs / name / "meta.json").read_text())
        rows.append(
            {
                "name": name,
                "kind": "keras",
                "model": name,
                "input": "images",
                **metrics,
                **{f"valid_{k}": (metrics.get("valid") or {}).get(k) for k in ("accuracy", "macro_f1", "weighted_f1")},
                "parameters": meta["parameters"],
                "epochs": meta["epochs_run"],
                "train_seconds": meta["train_seconds"],
                "images_per_second": meta.get("images_per_second"),
            }
        )
    if baselines is not None:
        for row in pd.read_csv(baselines, keep_default_na=False).to_dict("records"):
            rows.append(
                {**row, "name": f"{row['model']} ({row['input'].split(':')[0]})", "kind": "baseline", "epochs": None}
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[f"valid_{select}"] = pd.to_numeric(table[f"valid_{select}"])
    order = table.sort_values(["name"], kind="stable").sort_values(
        f"valid_{select}", ascending=False, kind="stable", na_position="last"
    )
    return order.reset_index(drop=True)
