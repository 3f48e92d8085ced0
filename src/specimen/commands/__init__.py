"""What each ``specimen`` command reads, writes and says: its arguments, declared with it, and a
runner that calls the library and returns the one line printed when it is done.

``@stage`` marks the DAG's stages (what Snakemake's rules and DVC's stages run; specimen.codedeps
reads each one's imports to derive the code it runs); ``@tool`` the others. A runner imports its
library module when it runs, so that ``specimen --help`` or a bad argument never starts TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

COMMANDS: dict[str, Command] = {}


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # whose docstring `specimen NAME --help` shows
    arguments: tuple  # (flags, argparse keywords) pairs
    run: object  # run(params, args) -> the line to print, or None
    dag: bool


def arg(*flags, **kwargs) -> tuple:
    return flags, kwargs


def stage(name: str, help: str, module: str, *arguments):
    """A DAG stage: Snakemake and DVC run `specimen NAME ...`."""

    def register(run):
        COMMANDS[name] = Command(name, help, module, arguments, run, dag=True)
        return run

    return register


def tool(name: str, help: str, module: str, *arguments):
    """A command people run by hand (or that Snakemake runs around the DAG, as dvc-commit)."""

    def register(run):
        COMMANDS[name] = Command(name, help, module, arguments, run, dag=False)
        return run

    return register


# The arguments several commands take.
DATA = (
    arg("--data", type=Path, required=True, help="processed images, e.g. data/processed"),
    arg("--index", type=Path, required=True, help="the clean index, e.g. data/clean/index.csv"),
    arg("--classes", type=Path, required=True, help="e.g. data/interim/classes.json"),
)


def model_and_data(out_example: str, model_help: str = "e.g. results/models/small_cnn") -> tuple:
    """What evaluate, explain and autoencoder read: a trained model's folder and the data; and where to write."""
    return (
        arg("model_dir", type=Path, help=model_help),
        *DATA,
        arg("--out", type=Path, required=True, help=f"e.g. {out_example}"),
    )


def training(out_example: str) -> tuple:
    """What train and tune both read: the model's name, the data, balance's rows and weights."""
    return (
        arg("model", help="a name from train.models, e.g. small_cnn"),
        *DATA,
        arg("--train", type=Path, required=True, help="balance's training index, e.g. data/clean/train.csv"),
        arg("--weights", type=Path, required=True, help="e.g. data/clean/class_weights.json"),
        arg("--out", type=Path, required=True, help=f"e.g. {out_example}"),
    )


# Registering: each phase's commands, in the DAG's order (`specimen --help` lists them so).
from specimen.commands import data, clean, train, report, tools  # noqa: E402, F401, I001  (after what they use)
