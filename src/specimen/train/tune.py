"""tune (optional, not in the default target, all): Bayesian optimisation of one model's training settings.

KerasTuner's ``BayesianOptimization``, seeded with ``seed``, searches within the bounds in
``tune:``: ``train.learning_rate`` (log scale), the head's dropout and dense units (0: no dense
layer; small_cnn: its dense layer) and, for a pretrained backbone, ``fine_tune.unfrozen_layers``
(0: the head only). ``tune.initial_points`` random trials come first, then the Gaussian process
proposes. Each trial trains as ``train`` does on the same data (balance's training rows and class
weights, the clean valid split, early stopping and ReduceLROnPlateau on ``train.monitor``; a
pretrained backbone in two phases, the head, then its top layers at ``fine_tune.learning_rate``),
up to ``tune.epochs`` per phase. Its score is the best ``train.monitor`` value it reached (lowest
loss, highest accuracy). Every trial starts from the same seed, so a trial's score depends only on
its values, and the same params give the same trials.

The search lives in a working folder (``logs/tune/<model>/`` from the CLI), outside the outputs:
a killed search run again keeps its finished trials and re-runs only the unfinished one. The folder
records the settings and data it was made with; when they change, the search starts afresh. It
is removed once the outputs are written.

Writes into results/tune/<model>/: ``best_params.yaml`` (train's keys to merge into params.yaml;
the score and trial in its header), ``trials.csv`` (one row per trial: its values, score, epochs,
trainable weights, seconds, status) and ``trials.png`` (the score per trial, the best so far marked).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml

from specimen import SpecimenError, figures
from specimen.artefacts import atomic_file, sha256_file, working_folder, write_csv
from specimen.train import kerastuner
from specimen.train.inputs import dataset, mixed
from specimen.train.space import VALUES, best_params, check_space, rounded, space, trial_params


def tune(
    model_name: str,
    processed: Path,
    index_path: Path,
    weights_path: Path,
    classes_path: Path,
    out_dir: Path,
    train: dict,
    tune: dict,
    seed: int,
    train_path: Path,
    work: Path,
) -> dict:
    """Search, then write best_params.yaml, trials.csv and trials.png into `out_dir`; returns the trials
    (a frame), the monitor and the best trial's row."""
    check_space(model_name, tune)
    files = [
        Path(processed) / "index.csv",
        Path(processed) / "meta.json",
        Path(index_path),
        Path(train_path),
        Path(weights_path),
        Path(classes_path),
    ]
    for f in files:
        if not f.is_file():
            raise SpecimenError(f"{f}: no such file")
    import keras_tuner as kt

    from specimen.backbones import check_size
    from specimen.train.setup import distribution, precision, read_inputs, seed_everything

    seed_everything(seed, train["deterministic"])
    inputs = read_inputs(processed, index_path, weights_path, classes_path, train, train_path)
    input_shape, monitor, mode = inputs.input_shape, inputs.monitor, inputs.mode
    if model_name != "small_cnn":
        check_size(model_name, input_shape[:2], "image.size")
        weights = train.get("weights", "imagenet")
        if weights not in ("imagenet", "none") and not Path(weights).is_file():
            raise SpecimenError(f"train.weights: {weights}: no such file (imagenet, none or a .weights.h5 file)")
    precision(train.get("mixed_precision", "off"))
    strategy = distribution()
    job = {
        "model": model_name,
        "train": train,
        "tune": tune,
        "seed": seed,
        "processed": Path(processed),
        "classes": inputs.classes,
        "train_rows": inputs.train_rows,
        "valid_rows": inputs.valid_rows,
        "valid": not inputs.valid_rows.empty,
        "input_shape": input_shape,
        "monitor": monitor,
        "mode": mode,
        "strategy": strategy,
        "batch_size": train["batch_size"] * strategy.num_replicas_in_sync,
        "class_weight": inputs.class_weight,
    }
    hp = space(model_name, train, tune)
    work = Path(work)
    tuner = _open_search(
        _tuner_class(),
        job,
        hp,
        kt.Objective(monitor, direction=mode),
        work,
        _fingerprint(model_name, train, tune, seed, files),
    )
    try:
        tuner.search()
    except kt.errors.FatalError as e:
        raise SpecimenError(str(e)) from None
    except RuntimeError as e:  # too many failed trials in a row: KerasTuner's message, then the last error
        failed = [t for t in tuner.oracle.trials.values() if t.message]
        last = failed[-1].message.strip().splitlines()[-1] if failed else ""
        raise SpecimenError(f"{str(e).splitlines()[0]} {last}".strip()) from None

    trials = trials_frame(tuner, monitor)
    done = trials[trials.status == "COMPLETED"]
    if done.empty:
        raise SpecimenError(f"tune {model_name}: no trial finished (see {work})")
    best = done.loc[done[monitor].idxmin() if mode == "min" else done[monitor].idxmax()]
    values = {k: best[k].item() if hasattr(best[k], "item") else best[k] for k in VALUES if k in hp.values}
    out_dir = Path(out_dir)
    write_csv(out_dir / "trials.csv", trials)
    figures.save(figures.trials(trials, model_name, monitor, mode), out_dir / "trials.png")
    with atomic_file(out_dir / "best_params.yaml") as tmp:
        tmp.write_text(_best_text(model_name, values, best, len(done), monitor, mode))
    shutil.rmtree(work)
    return {"trials": trials, "monitor": monitor, "best": best.to_dict()}


def _fingerprint(model_name, train, tune, seed, files) -> dict:
    weights = train.get("weights", "imagenet")
    if Path(weights).is_file():
        files = [*files, Path(weights)]
    return {
        "model": model_name,
        "train": train,
        "tune": tune,
        "seed": seed,
        "files": {str(f): sha256_file(f) for f in files},
    }


def _tuner_class():
    import keras
    import keras_tuner as kt

    kerastuner.check()
    kerastuner.patch()  # a failed trial in one line; its state files written whole

    from specimen.train.models import build
    from specimen.train.setup import compile_phase, plan, plateau_callbacks

    class Search(kt.BayesianOptimization):
        """Trials trained the way train trains (see the module docstring)."""

        def __init__(self, job: dict, **kwargs):
            self.job = job
            super().__init__(**kwargs)

        def run_trial(self, trial, *args, **kwargs):
            try:
                return self._run(trial)
            except SpecimenError as e:  # the user's to fix: stop the search, don't retry
                raise kt.errors.FatalError(str(e)) from None

        def _run(self, trial):
            j = self.job
            values = {k: rounded(v) for k, v in trial.hyperparameters.values.items()}
            params = trial_params(j["train"], j["tune"], values)
            keras.backend.clear_session()
            keras.utils.set_random_seed(j["seed"])  # each trial as if it were the first
            start = time.perf_counter()
            train_ds = mixed(
                dataset(
                    j["train_rows"],
                    j["processed"],
                    j["classes"],
                    j["batch_size"],
                    shuffle=True,
                    seed=j["seed"],
                    one_hot=True,
                ),
                params.get("augment", {}),
                j["seed"],
            )
            valid_ds = (
                dataset(j["valid_rows"], j["processed"], j["classes"], j["batch_size"], one_hot=True)
                if j["valid"]
                else None
            )
            steps = -(-len(j["train_rows"]) // j["batch_size"])
            with j["strategy"].scope():
                model = build(j["model"], j["input_shape"], len(j["classes"]), params, j["seed"])
            monitor, mode = j["monitor"], j["mode"]
            scores, trainable = [], 0
            for phase in plan(j["model"], params):
                with j["strategy"].scope():
                    count = compile_phase(model, phase, params, steps)
                trainable = max(trainable, count)
                callbacks = [c for c in plateau_callbacks(params, monitor, mode, restore_best_weights=True) if c]
                history = model.fit(
                    train_ds,
                    validation_data=valid_ds,
                    epochs=phase.epochs,
                    callbacks=callbacks,
                    class_weight=j["class_weight"],
                    shuffle=False,
                    verbose=0,
                )
                scores += history.history[monitor]
            score = float(min(scores) if mode == "min" else max(scores))
            extra = {
                "epochs": len(scores),
                "trainable_weights": trainable,
                "seconds": round(time.perf_counter() - start, 2),
            }
            Path(self.get_trial_dir(trial.trial_id), "specimen.json").write_text(json.dumps(extra))
            number = int(trial.trial_id) + 1
            shown = ", ".join(
                f"{k} {values[k]:.3g}" if isinstance(values[k], float) else f"{k} {values[k]}"
                for k in VALUES
                if k in values
            )
            print(
                f"trial {number}/{j['tune']['trials']}: {shown}: {monitor} {score:.4f} "
                f"({len(scores)} epoch{'s' * (len(scores) != 1)}, {trainable} trainable weights, {extra['seconds']:.1f} s)",
                flush=True,
            )
            return {monitor: score}

        def on_trial_end(self, trial):
            if trial.status != "COMPLETED":  # KerasTuner's own report is off (verbose 0)
                error = (trial.message or "").strip().splitlines()[-1:] or ["no message"]
                print(f"trial {int(trial.trial_id) + 1}/{self.job['tune']['trials']} failed: {error[0]}", flush=True)
            super().on_trial_end(trial)
            self.oracle.save()  # KerasTuner saves before it lets go of the trial: save it finished

    return Search


def _open_search(Search, job, hp, objective, work: Path, fingerprint: dict):
    """The tuner over `work`, resuming the search there when it was made with the same settings."""
    if working_folder(work, fingerprint):
        print(f"{work}: made with other settings or data: starting a new search", flush=True)
    kwargs = dict(
        job=job,
        objective=objective,
        max_trials=job["tune"]["trials"],
        hyperparameters=hp,
        num_initial_points=job["tune"]["initial_points"],
        seed=job["seed"] + 1,  # KerasTuner: 0 = unseeded
        allow_new_entries=False,
        tune_new_entries=False,
        directory=str(work),
        project_name="search",
    )
    # KerasTuner reloads only when its tuner state exists, and writes it after the oracle's as the first trial
    # ends: killed in between, the oracle's record would be thrown away. That state is always {}: write it.
    state = work / "search" / "tuner0.json"
    if (work / "search" / "oracle.json").is_file() and not state.exists():
        kerastuner.save_json(state, {})
    try:
        tuner = Search(**kwargs)
    except (ValueError, KeyError, RuntimeError) as e:  # a state file cut short by a kill
        print(f"{work}: cannot resume ({str(e).splitlines()[0]}): starting a new search", flush=True)
        shutil.rmtree(work / "search", ignore_errors=True)
        tuner = Search(**kwargs)
    oracle = tuner.oracle
    # A trial killed after KerasTuner wrote its file but before it saved the oracle: the oracle's state is
    # still that of before the trial was drawn, so forget the trial and it is drawn again, with the same values.
    for trial_id in [t for t in oracle.trials if t not in oracle.start_order]:
        del oracle.trials[trial_id]
        shutil.rmtree(tuner.get_trial_dir(trial_id), ignore_errors=True)
    # A trial killed after KerasTuner wrote it finished but before it let go of it is queued again: drop it.
    kerastuner.drop_finished_retries(oracle)
    oracle.verbose = 0  # one line per trial, printed by the trial
    finished = sum(t.status == "COMPLETED" for t in oracle.trials.values())
    if finished:
        print(
            f"resuming the search in {work}: {finished} of {job['tune']['trials']} trials already finished", flush=True
        )
    return tuner


def trials_frame(tuner, monitor: str) -> pd.DataFrame:
    rows = []
    for trial_id, t in sorted(tuner.oracle.trials.items()):
        extra_path = Path(tuner.get_trial_dir(trial_id), "specimen.json")
        extra = json.loads(extra_path.read_text()) if extra_path.is_file() else {}
        values = {k: rounded(v) for k, v in t.hyperparameters.values.items()}
        rows.append(
            {
                "trial": int(trial_id) + 1,
                **{k: values[k] for k in VALUES if k in values},
                monitor: rounded(float(t.score)) if t.status == "COMPLETED" else None,  # ranked as written
                "epochs": extra.get("epochs"),
                "trainable_weights": extra.get("trainable_weights"),
                "seconds": extra.get("seconds"),
                "status": t.status,
            }
        )
    return pd.DataFrame(rows)


def _best_text(model_name, values, best, n_done, monitor, mode) -> str:
    flags = " ".join(f"-S train.{k}={v}" for k, v in _dotted(best_params(model_name, values)))
    lines = [
        f"# specimen tune {model_name}: the best of {n_done} trials is trial {int(best['trial'])}, "
        f"{monitor} {best[monitor]:.6g} ({'lowest' if mode == 'min' else 'highest'} is best).",
        "# Merge these keys into train: in params.yaml, or try them first as an experiment:",
        f"#   dvc exp run {flags}",
    ]
    body = yaml.safe_dump(best_params(model_name, values), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def _dotted(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _dotted(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v
