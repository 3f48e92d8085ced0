"""tune's search space: the ``tune:`` bounds as KerasTuner hyperparameters named after the train keys
they set, and a trial's values back as train's params (to train a trial, and as best_params.yaml)."""

from __future__ import annotations

from specimen import SpecimenError

VALUES = ("learning_rate", "units", "dropout", "unfrozen_layers")


def check_space(model_name: str, tune: dict) -> None:
    """Bad input as one line, before anything is loaded."""
    from specimen.train.models import MODELS

    if model_name not in MODELS:
        raise SpecimenError(f"unknown model {model_name!r}: choose from {', '.join(MODELS)}")
    for name in ("learning_rate", "dropout", "unfrozen_layers"):
        low, high = tune[name]
        if low > high:
            raise SpecimenError(f"tune.{name}: [{low}, {high}] is not a range (low first)")


def space(model_name: str, train: dict, tune: dict):
    """The search space: KerasTuner hyperparameters named after their train keys."""
    import keras_tuner as kt

    from specimen.train.models import pretrained

    hp = kt.HyperParameters()

    def between(name, low, high, **kw):
        if low == high:
            return hp.Fixed(name, low)
        return (hp.Int if isinstance(low, int) and isinstance(high, int) else hp.Float)(name, low, high, **kw)

    between("learning_rate", *map(float, tune["learning_rate"]), sampling="log")
    if len(tune["units"]) > 1:
        hp.Choice("units", sorted(tune["units"]))
    else:
        hp.Fixed("units", tune["units"][0])
    between("dropout", *map(float, tune["dropout"]))
    if pretrained(model_name, train):
        between("unfrozen_layers", *map(int, tune["unfrozen_layers"]))
    return hp


def trial_params(train: dict, tune: dict, values: dict) -> dict:
    """train's params as a trial with these values trains them (each phase up to tune.epochs)."""
    unfrozen = values.get("unfrozen_layers", 0)
    head = {"units": values["units"], "dropout": values["dropout"]}
    return {
        **train,
        "epochs": tune["epochs"],
        "learning_rate": values["learning_rate"],
        "head": {**train.get("head", {}), **head},
        "small_cnn": {**train.get("small_cnn", {}), **head},
        "fine_tune": {
            **train.get("fine_tune", {}),
            "epochs": tune["epochs"] if unfrozen else 0,
            "unfrozen_layers": unfrozen,
        },
    }


def best_params(model_name: str, values: dict) -> dict:
    """The train-section keys a trial's values set, nested as in params.yaml."""
    head = {"units": values["units"], "dropout": values["dropout"]}
    best = {"learning_rate": values["learning_rate"], "small_cnn" if model_name == "small_cnn" else "head": head}
    if "unfrozen_layers" in values:  # 0: no fine-tuning phase
        best["fine_tune"] = (
            {"unfrozen_layers": values["unfrozen_layers"]} if values["unfrozen_layers"] else {"epochs": 0}
        )
    return best


def rounded(value):
    return float(f"{value:.6g}") if isinstance(value, float) else value
