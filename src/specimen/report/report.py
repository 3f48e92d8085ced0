"""report: compare the run's models and write the run's summary, ``results/report/summary.json``, last.

``results/report/``: ``comparison.csv``, one row per trained model and per scikit-learn baseline
(accuracy, macro and weighted F1, parameters, train time, training images/s), best first, and
``comparison.png``: the scores side by side, and accuracy against train time.
``summary.json``: JSON with the headline metrics, the data accounting (images in, rejected,
removed by cleaning, kept per split) and where every artefact is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from specimen import figures
from specimen.artefacts import write_csv, write_json

COLUMNS = [
    "name",
    "kind",
    "model",
    "input",
    "accuracy",
    "macro_f1",
    "weighted_f1",
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
) -> dict:
    table = comparison(models, evaluation, model_dirs, baselines)
    write_csv(out_dir / "comparison.csv", table)
    figures.save(figures.comparison(table), out_dir / "comparison.png")
    trained = table[table.kind == "keras"]
    scores = ("accuracy", "macro_f1", "weighted_f1")

    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    rejects = pd.read_csv(processed / "rejects.csv", keep_default_na=False)
    removed = pd.read_csv(clean_dir / "removed.csv", keep_default_na=False)
    kept = pd.read_csv(clean_dir / "index.csv", keep_default_na=False)
    summary = {
        "dataset": json.loads((raw / "source.json").read_text()),
        "best_model": trained.iloc[0].model,
        "models": {r["model"]: {k: r[k] for k in scores} for r in trained.to_dict("records")},
        "baselines": {r["name"]: {k: r[k] for k in scores} for r in table[table.kind == "baseline"].to_dict("records")},
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
    for path in summary_paths:
        write_json(path, summary)  # the same bytes at each (results/all too, its old name, until 0.3)
    return summary


def comparison(models: list[str], evaluation: Path, model_dirs: Path, baselines: Path | None) -> pd.DataFrame:
    """One row per trained model (its metrics.json and meta.json) and per baseline (summary.csv)."""
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
    return table.sort_values(["accuracy", "macro_f1"], ascending=False, kind="stable").reset_index(drop=True)
