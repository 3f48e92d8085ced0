"""The ``specimen`` commands of evaluate, explain, baselines, report: the report phase (workflow/rules/report.smk)."""

from __future__ import annotations

from pathlib import Path

from specimen.commands import DATA, arg, model_and_data, stage


@stage(
    "evaluate",
    "score one model on the test split: results/evaluation/<model>/",
    "specimen.report.evaluate",
    *model_and_data("results/evaluation/small_cnn"),
    arg(
        "--curves",
        type=Path,
        help="a copy of the training history for DVC's curves plot, e.g. results/curves/small_cnn.csv",
    ),
)
def evaluate(p, args):
    from specimen.report.evaluate import evaluate

    m = evaluate(
        args.model_dir,
        args.data,
        args.index,
        args.classes,
        args.out,
        settings=p["evaluate"],
        seed=p["seed"],
        curves_csv=args.curves,
    )
    top = "".join(f", top-{k.split('_')[1]} {v:.4f}" for k, v in m.items() if k.startswith("top_"))
    return (
        f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}{top} on {m['test_images']} test images "
        f"(calibration error {m['expected_calibration_error']:.3f})"
    )


@stage(
    "explain",
    "what one model looks at: Grad-CAM, feature maps and activation maximisation PNGs in results/explain/<model>/",
    "specimen.report.explain",
    *model_and_data("results/explain/small_cnn"),
)
def explain(p, args):
    from specimen.report.explain import explain

    s = explain(args.model_dir, args.data, args.index, args.classes, args.out, p["explain"], p["seed"])
    am = s["activation_max"]["classes"]
    return (
        f"Grad-CAM on {s['gradcam']['layer']} for {len(s['gradcam']['samples'])} test images, feature maps of "
        f"{', '.join(s['feature_maps']['layers'])}, {len(am)} classes maximised (mean probability "
        f"{sum(c['start_probability'] for c in am.values()) / len(am):.2f} -> "
        f"{sum(c['final_probability'] for c in am.values()) / len(am):.2f}) in {args.out}"
    )


@stage(
    "baselines",
    "scikit-learn baselines (logistic regression, MLP, linear SVM, random forest) on pixels and "
    "features: results/baselines/",
    "specimen.report.baselines",
    *DATA,
    arg("--features", type=Path, required=True, help="embed's vectors, e.g. data/features/histogram.npz"),
    arg("--out", type=Path, required=True, help="e.g. results/baselines"),
)
def baselines(p, args):
    from specimen.report.baselines import baselines

    s = baselines(args.data, args.index, args.classes, args.features, args.out, p["baselines"], p["seed"])
    table = s["summary"]
    if table.empty:
        return f"no baselines (baselines.models is empty): empty {args.out / 'summary.csv'}"
    best = table.loc[table.accuracy.idxmax()]
    used = (
        f"{s['train_images']} train images (a stratified subsample of {s['train_images_available']})"
        if s["train_images"] < s["train_images_available"]
        else f"{s['train_images']} train images"
    )
    unconverged = f"; not converged: {', '.join(s['not_converged'])}" if s["not_converged"] else ""
    return (
        f"{len(table)} baselines on {used}, {s['test_images']} test images; best {best.model} on {best['input']}: "
        f"accuracy {best.accuracy:.4f}{unconverged} (see {args.out / 'summary.csv'})"
    )


@stage(
    "report",
    "compare the models and write the run's summary, last: results/report/ (comparison.csv, comparison.png, summary.json)",
    "specimen.report.report",
    arg("--evaluation", type=Path, required=True, help="evaluate's folders, e.g. results/evaluation"),
    arg("--models", type=Path, required=True, help="e.g. results/models"),
    arg("--data", type=Path, required=True, help="e.g. data/processed"),
    arg("--clean", type=Path, required=True, help="e.g. data/clean"),
    arg("--raw", type=Path, required=True, help="e.g. data/raw"),
    arg("--out", type=Path, required=True, help="e.g. results/report"),
    arg(
        "--summary",
        type=Path,
        nargs="+",
        required=True,
        help="where to write the summary, e.g. results/report/summary.json; more paths: the same bytes there too "
        "(the DAG writes results/all, its name in specimen 0.1, until 0.3)",
    ),
    arg("--baselines", type=Path, help="the baselines' summary.csv, e.g. results/baselines/summary.csv"),
    arg("--explain", type=Path, help="explain's folders, e.g. results/explain"),
)
def report(p, args):
    from specimen.report.report import report

    s = report(
        p["train"]["models"],
        args.evaluation,
        args.models,
        args.data,
        args.clean,
        args.raw,
        args.out,
        args.summary,
        baselines=args.baselines,
        explain=args.explain,
        select=p["report"]["select"],
    )
    best = s["models"][s["best_model"]]
    return (
        f"best model {s['best_model']} (chosen on {s['chosen_on']}): test accuracy {best['accuracy']:.4f}, "
        f"macro F1 {best['macro_f1']:.4f}; summary in {args.summary[0]}"
    )
