"""What tune changes in KerasTuner 1.4, which has no public way to do it, in one place:

- a failed trial is one line (tune's own ``on_trial_end``), not KerasTuner's traceback:
  ``keras_tuner.src.config.DEBUG`` off;
- its state files (oracle.json, each trial.json) are written complete or not at all: it rewrites
  them as every trial ends, and a kill mid-write lost the whole search on resume, so its
  ``keras_tuner.src.utils.save_json`` is replaced by an atomic one;
- a trial killed after KerasTuner wrote it finished but before it let go of it is queued again on
  resume: ``drop_finished_retries`` takes it out of the oracle's ``_retry_queue``.

``check`` says in one line which of these an upgrade removed (tests/test_tune.py runs it).
"""

from __future__ import annotations

import json

from specimen import SpecimenError
from specimen.artefacts import atomic_file


def check() -> None:
    """A SpecimenError naming what of KerasTuner's internals used here this version lacks."""
    import keras_tuner as kt

    missing = []
    try:
        import keras_tuner.src.config as config
        import keras_tuner.src.utils as utils
    except ImportError:
        config = utils = None
        missing.append("keras_tuner.src.config, keras_tuner.src.utils")
    if config is not None and not hasattr(config, "DEBUG"):
        missing.append("keras_tuner.src.config.DEBUG")
    if utils is not None and not hasattr(utils, "save_json"):
        missing.append("keras_tuner.src.utils.save_json")
    oracle = kt.oracles.BayesianOptimizationOracle(objective="val_loss", max_trials=1)
    if not hasattr(oracle, "_retry_queue"):
        missing.append("Oracle._retry_queue")
    if missing:
        raise SpecimenError(
            f"keras-tuner {kt.__version__} has no {', '.join(missing)}, which "
            "specimen.train.kerastuner changes: pin keras-tuner<1.5 or adapt it"
        )


def patch() -> None:
    """Quiet failed trials, and make KerasTuner's state files atomic."""
    import keras_tuner.src.config
    import keras_tuner.src.utils

    keras_tuner.src.config.DEBUG = False
    keras_tuner.src.utils.save_json = save_json


def save_json(path, obj) -> str:
    """KerasTuner's utils.save_json, complete or absent."""
    text = json.dumps(obj)
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return text


def drop_finished_retries(oracle) -> None:
    """Take a trial that is finished out of the queue of trials to run again."""
    oracle._retry_queue = [t for t in oracle._retry_queue if oracle.trials[t].status != "COMPLETED"]
