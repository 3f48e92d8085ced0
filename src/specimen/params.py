"""params.yaml: load it, validate it against workflow/schemas/params.schema.yaml, fill defaults.

A wrong key or value is one line that names it, e.g.
``params.yaml: train.epochs: 0 is less than the minimum of 1``.
"""
from __future__ import annotations

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
    """The jsonschema recipe: a validator that also fills in each property's `default`."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _where(error) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


TYPE_WORDS = {"null": "null", "string": "a string", "integer": "an integer", "number": "a number",
              "boolean": "true or false", "array": "a list", "object": "a mapping"}


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
        bounds = [f"{op} {schema[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                         ("maximum", "<="), ("exclusiveMaximum", "<")) if key in schema]
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
    schema = yaml.safe_load(schema_path(path).read_text(encoding="utf-8"))
    return validate(params, schema, source=path.name)
