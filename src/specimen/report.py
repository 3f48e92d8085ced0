"""report: compare the run's models and write the run's summary, ``results/all``, last.

``results/report/``: ``comparison.csv`` (one row per model) and ``comparison.png``.
``results/all``: JSON with the headline metrics, the data accounting (images in, rejected,
removed by cleaning, kept per split) and where every artefact is.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from specimen.files import save_figure, write_csv, write_json


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["accuracy", "macro_f1", "weighted_f1"]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(table) + 2), 4))
    table.set_index("model")[metrics].plot.bar(ax=ax, rot=0, ylim=(0, 1))
    ax.set_title("Test-split scores per model")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)
    plt.close(fig)


def report(models: list[str], reports: Path, model_dirs: Path, processed: Path, clean_dir: Path,
           raw: Path, out_dir: Path, summary_path: Path) -> dict:
    rows = []
    for name in models:
        metrics = json.loads((reports / name / "metrics.json").read_text())
        meta = json.loads((model_dirs / name / "meta.json").read_text())
        rows.append({"model": name, **metrics, "parameters": meta["parameters"],
                     "epochs": meta["epochs_run"], "train_seconds": meta["train_seconds"]})
    table = pd.DataFrame(rows).sort_values("accuracy", ascending=False)
    write_csv(out_dir / "comparison.csv", table)
    plot_comparison(table, out_dir / "comparison.png")

    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    rejects = pd.read_csv(processed / "rejects.csv", keep_default_na=False)
    removed = pd.read_csv(clean_dir / "removed.csv", keep_default_na=False)
    kept = pd.read_csv(clean_dir / "index.csv", keep_default_na=False)
    best = table.iloc[0]
    summary = {
        "dataset": json.loads((raw / "source.json").read_text()),
        "best_model": best.model,
        "models": {r["model"]: {k: r[k] for k in ("accuracy", "macro_f1", "weighted_f1")} for r in rows},
        "images": {
            "source_files": len(index) + len(rejects),
            "rejected": rejects.reason.str.split(":").str[0].value_counts().to_dict(),
            "removed": removed.reason.value_counts().to_dict(),
            "kept_per_split": kept.split.value_counts().to_dict(),
        },
        "artefacts": {
            "manifest": "data/interim/manifest.csv", "processed": str(processed), "clean": str(clean_dir),
            "models": {m: str(model_dirs / m / "model.keras") for m in models},
            "reports": {m: str(reports / m) for m in models},
            "comparison": str(out_dir / "comparison.csv"),
        },
    }
    write_json(summary_path, summary)
    return summary
