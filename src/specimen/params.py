"""params.yaml: load it, validate it against workflow/schemas/params.schema.yaml, fill defaults.

A wrong key or value is one line that names it, e.g.
``params.yaml: train.epochs: 0 is less than the minimum of 1``.

DVC reads params.yaml as it is written, without the schema's defaults: a key left out is missing
from dvc.lock's record (and, named in dvc.yaml, stops DVC), so the project's params.yaml must write
every key out. ``missing`` lists those it leaves to the defaults; ``fill`` (``specimen params
--fill``) writes them in, keeping the file's comments.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match

from specimen import SpecimenError

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")


def schema_path(params_path: Path) -> Path:
    """The schema of the project that holds `params_path` (or of this checkout of specimen)."""
    for root in (params_path.resolve().parent, Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / SCHEMA_RELPATH).is_file():
            return root / SCHEMA_RELPATH
    raise SpecimenError(f"cannot find {SCHEMA_RELPATH} beside {params_path}: run specimen from the project root")


def _with_defaults(validator_class):
    """The jsonschema recipe: a validator that also fills in each property's `default`. And YAML 1.1
    reads an unquoted ``off`` or ``on`` as a boolean (as Snakemake and PyYAML do): where the schema's
    choices are the words, the boolean is read back as the word, so that ``action: off`` means off."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, sub["default"])
                words = {"on", "off"} & set(sub.get("enum", ()))
                if isinstance(instance.get(name), bool) and {"off" if not instance[name] else "on"} <= words:
                    instance[name] = "on" if instance[name] else "off"
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _where(error) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


TYPE_WORDS = {
    "null": "null",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


def _describe(schema: dict) -> str:
    """What a (sub)schema accepts, in words: "an integer >= 1", "'all'", "a list of 2 (...)"."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    types = schema.get("type", [])
    words = []
    for t in types if isinstance(types, list) else [types]:
        word = TYPE_WORDS.get(t, str(t))
        bounds = [
            f"{op} {schema[key]}"
            for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
            if key in schema
        ]
        if t in ("integer", "number") and bounds:
            word += " " + " and ".join(bounds)
        if t == "array":
            if schema.get("minItems") is not None and schema.get("minItems") == schema.get("maxItems"):
                word += f" of {schema['minItems']}"
            if isinstance(schema.get("items"), dict):
                word += f" ({_describe(schema['items'])} each)"
        words.append(word)
    return " or ".join(words) or "a value its description gives"


def _message(error) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))} (allowed: {allowed})"
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed (choose one of: {', '.join(map(str, error.validator_value))})"
    if error.validator in ("oneOf", "anyOf"):
        return f"{error.instance!r} is not allowed (expected {', or '.join(map(_describe, error.validator_value))})"
    if error.validator == "type":
        return f"{error.instance!r} is not allowed (expected {_describe(error.schema)})"
    if error.validator == "pattern" and "description" in error.schema:
        return f"{error.instance!r} is not valid (expected {error.schema['description']})"
    return error.message


def validate(params: dict, schema: dict, source: str = "params.yaml") -> dict:
    """Validate in place (filling defaults) and return params; raise SpecimenError with one line."""
    validator = _with_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(params))
    if error is not None:
        raise SpecimenError(f"{source}: {_where(error)}: {_message(error)}")
    split = params["dataset"].get("split")
    if split and abs(sum(split.values()) - 1) > 1e-6:
        raise SpecimenError(f"{source}: dataset.split: proportions add up to {sum(split.values()):g}, not 1")
    train = params.get("train") or {}
    if train.get("jit_compile") == "on" and train.get("deterministic"):
        # Keras turns XLA off, with only a warning, while TensorFlow's op determinism is on
        raise SpecimenError(
            f"{source}: train.jit_compile: 'on' needs train.deterministic: false "
            "(TensorFlow's XLA is not deterministic); set one of them, or jit_compile: auto"
        )
    return params


def load(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise SpecimenError(f"{path}: no such params file (run from the project root, or pass --params)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecimenError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise SpecimenError(f"{path}: expected a mapping of settings, got {type(params).__name__}")
    return validate(params, schema_for(path), source=path.name)


def schema_for(path: Path) -> dict:
    return yaml.safe_load(schema_path(path).read_text(encoding="utf-8"))


def missing(raw: dict, schema: dict) -> list[str]:
    """The keys, dotted and outermost first, that `raw` (a valid params mapping) leaves to the
    schema's defaults."""
    return _absent(raw, validate(copy.deepcopy(raw), schema))


def _absent(raw: dict, filled: dict, prefix: str = "") -> list[str]:
    absent = []
    for key, value in filled.items():
        if key not in raw:
            absent.append(prefix + key)
        elif isinstance(value, dict) and isinstance(raw[key], dict):
            absent += _absent(raw[key], value, f"{prefix}{key}.")
    return absent


def check_complete(path: str | Path = "params.yaml") -> None:
    """A SpecimenError naming the keys `path` leaves to the defaults, if any."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    absent = missing(raw, schema_for(path))
    if absent:
        shown = ", ".join(absent[:8]) + (f" and {len(absent) - 8} more" if len(absent) > 8 else "")
        raise SpecimenError(
            f"{path}: {shown} not written out: DVC reads {path.name} as it is, so dvc.lock would "
            f"not record the value a stage uses; run `specimen params --fill` to write in the defaults"
        )


def fill(path: str | Path = "params.yaml") -> list[str]:
    """Write the keys `path` leaves to the schema's defaults into it, each at the end of its mapping
    with its default, leaving every other line (comments included) as it is. Returns the keys."""
    path = Path(path)
    load(path)  # valid first: one line naming what is wrong otherwise
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    filled = validate(copy.deepcopy(raw), schema_for(path))
    absent = _absent(raw, filled)
    lines = text.splitlines()
    for dotted in absent:
        *parents, key = dotted.split(".")
        value = filled
        for part in parents:
            value = value[part]
        at, indent = _block_end(lines, parents, path)
        new = [" " * indent + line for line in _entry(key, value[key], block=not parents)]
        lines[at:at] = [""] + new if not parents else new  # a group of its own: after a blank line
    tmp = path.with_name(f".{path.name}.fill")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if yaml.safe_load(tmp.read_text(encoding="utf-8")) != filled:  # what was written reads back as meant
        tmp.unlink()
        raise SpecimenError(f"{path}: could not write in {', '.join(absent)}; add them by hand")
    tmp.replace(path)
    return absent


def _entry(key: str, value, block: bool = False) -> list[str]:
    """`key: value` as YAML lines: a mapping that holds collections (or a whole group, `block`) as a
    block, anything else on one line, in the schema's order."""
    if isinstance(value, dict) and (block or any(isinstance(v, (dict, list)) and v for v in value.values())):
        return [f"{key}:"] + ["  " + line for k, v in value.items() for line in _entry(k, v)]
    flow = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=10**6)
    return [f"{key}: {flow.strip()[1:-1]}"]


def _block_end(lines: list[str], parents: list[str], path: Path) -> tuple[int, int]:
    """Where a new key of the block mapping at `parents` goes (the line after its last entry, before
    blank lines and comments that follow it) and its indentation."""
    start, end, indent = 0, len(lines), 0
    for part in parents:
        for i in range(start, end):
            if lines[i].startswith(" " * indent + part + ":") and lines[i][indent] != " ":
                break
        else:
            raise SpecimenError(f"{path}: cannot find {'.'.join(parents)} to write into; add the keys by hand")
        rest = lines[i].split(":", 1)[1].split("#", 1)[0].strip()
        if rest:  # a flow mapping ({a: 1}) on one line
            raise SpecimenError(f"{path}: {'.'.join(parents)} is written on one line; add the missing keys by hand")
        children = [j for j in range(i + 1, end) if lines[j].strip() and not lines[j].lstrip().startswith("#")]
        child = next((len(lines[j]) - len(lines[j].lstrip()) for j in children), indent + 2)
        block_end = next((j for j in children if len(lines[j]) - len(lines[j].lstrip()) < child), end)
        start, end, indent = i + 1, block_end, child
    last = max(
        (j for j in range(start, end) if lines[j].strip() and not lines[j].lstrip().startswith("#")), default=start - 1
    )
    return last + 1, indent
