"""The ``specimen`` commands of train and tune: the train phase (workflow/rules/train.smk)."""

from __future__ import annotations

from pathlib import Path

from specimen.commands import arg, stage, training


@stage(
    "train",
    "train one model (head, then fine-tuning; resumes after a kill): results/models/<model>/",
    "specimen.train.train",
    *training("results/models/small_cnn"),
    arg(
        "--work",
        type=Path,
        help="resumable state while training: backups, live TensorBoard and DVCLive logs "
        "(default: logs/train/<model>; `tensorboard --logdir logs/train` to watch)",
    ),
)
def train(p, args):
    from specimen.train.train import train

    h = train(
        args.model,
        args.data,
        args.index,
        args.weights,
        args.classes,
        args.out,
        p["train"],
        p["seed"],
        train_path=args.train,
        work=args.work or Path("logs/train") / args.model,
    )
    best = f"; best val_accuracy {h['val_accuracy'].max():.4f}" if "val_accuracy" in h else ""
    return f"{len(h)} epochs ({', '.join(f'{n} {k}' for k, n in h.phase.value_counts(sort=False).items())}){best}"


@stage(
    "tune",
    "optional: Bayesian optimisation (KerasTuner) of one model's learning rate, head and unfrozen "
    "layers: results/tune/<model>/",
    "specimen.train.tune",
    *training("results/tune/small_cnn"),
    arg("--work", type=Path, help="the search's resumable state (default: logs/tune/<model>)"),
)
def tune(p, args):
    from specimen.train.tune import tune

    r = tune(
        args.model,
        args.data,
        args.index,
        args.weights,
        args.classes,
        args.out,
        p["train"],
        p["tune"],
        p["seed"],
        train_path=args.train,
        work=args.work or Path("logs/tune") / args.model,
    )
    t, best, monitor = r["trials"], r["best"], r["monitor"]
    return (
        f"{(t.status == 'COMPLETED').sum()} of {len(t)} trials finished; best {monitor} {best[monitor]:.4f} "
        f"(trial {int(best['trial'])}); see {args.out / 'best_params.yaml'}"
    )
