"""The one command line: ``specimen <stage> ...``. Snakemake rules and DVC stages call exactly these.

Every command validates its params file first (params.yaml, or $SPECIMEN_PARAMS: the config Snakemake
runs with); an error the user can fix is one line on stderr and exit status 2, never a traceback: a
wrong param, an input that is missing (naming the stage that makes it), a full disk. The commands and
their arguments are in specimen.commands.
"""

from __future__ import annotations

import argparse
import ast
import errno
import os
import sys
from pathlib import Path

from specimen import SpecimenError, __version__
from specimen.commands import COMMANDS

# A full disk or quota is the user's to fix, not a bug: one line, like a SpecimenError. Every
# artefact is written beside its final name and moved in place (specimen.artefacts), so what the
# failed write began is already gone when this is printed.
FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
MISSING = {errno.ENOENT, errno.ENOTDIR}


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; the command `chosen` (the one being run) gets its module's docstring as its
    --help text, read from that one file (not imported: no TensorFlow for --help)."""
    top = argparse.ArgumentParser(
        prog="specimen",
        description="A reproducible image-classification pipeline. Each stage below is one step of the "
        "DAG that `snakemake all` and `dvc repro` run; `specimen STAGE --help` tells "
        "what it reads and writes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"specimen {__version__}")
    subs = top.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for command in COMMANDS.values():
        help = command.help if command.dag else f"tool: {command.help}"
        sub = subs.add_parser(
            command.name,
            help=help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=(module_doc(command.module) if command.name == chosen else None) or help,
        )
        sub.add_argument(
            "--params",
            type=Path,
            default=Path(os.environ.get("SPECIMEN_PARAMS", "params.yaml")),
            help="the params file (default: $SPECIMEN_PARAMS, which Snakemake sets to the config it "
            "runs with, else params.yaml)",
        )
        for flags, kwargs in command.arguments:
            sub.add_argument(*flags, **kwargs)
        sub.set_defaults(command=command)
    return top


def module_doc(module: str) -> str:
    """A module's docstring, from its source."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = parser(chosen).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log: its CUDA probe on a CPU machine
    try:
        from specimen import params as params_mod

        p = params_mod.load(args.params)
        if args.command.dag and not os.environ.get("SPECIMEN_PARAMS") and args.params == Path("params.yaml"):
            params_mod.check_complete(args.params)  # as DVC runs it: dvc.lock records params.yaml as written
        message = args.command.run(p, args)
    except SpecimenError as e:
        return fail(args.stage, str(e))
    except KeyboardInterrupt:
        print(f"specimen {args.stage}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno in FULL_DISK:
            target = e.filename or getattr(args, "out", None)  # a write() error names no file: the stage's output
            where = f" writing {target}" if target else ""
            return fail(
                args.stage,
                f"{os.strerror(e.errno).lower()}{where}: nothing was kept; free some space "
                "(or move the project to a larger disk) and run it again",
            )
        if e.errno in MISSING and e.filename:
            return fail(args.stage, f"{e.filename}: no such file or folder{made_by(e.filename)}")
        if e.filename:
            return fail(args.stage, f"{e.filename}: {os.strerror(e.errno).lower() if e.errno else e}")
        raise
    if message:
        print(f"specimen {args.stage}: {message}")
    return 0


def fail(stage: str, message: str) -> int:
    print(f"specimen {stage}: error: {message}", file=sys.stderr)
    return 2


def made_by(path) -> str:
    """ ", made by the DAG's stage X: ..." for a path that a stage of ./dvc.yaml writes (or lies inside
    one of its output folders), else ""."""
    import re

    import yaml

    try:
        stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
        wanted = Path(os.path.relpath(Path(path).resolve(), Path.cwd().resolve())).as_posix()
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return ""
    for name, spec in stages.items():
        for out in spec.get("do", spec).get("outs", []):
            out = next(iter(out)) if isinstance(out, dict) else str(out)
            pattern = re.sub(r"\\\$\\\{[^}]*\\\}", "[^/]+", re.escape(out))  # ${item}, ${embed.extractor}
            if re.fullmatch(f"{pattern}(/.*)?", wanted):
                target = "/".join(wanted.split("/")[: len(out.split("/"))])  # the output itself, not a file in it
                return (
                    f", which the {name} stage makes: run it first (snakemake --cores 2 {target}, or dvc repro {name})"
                )
    return ""


if __name__ == "__main__":
    sys.exit(main())
