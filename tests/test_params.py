"""Every key of params.yaml, given a value its schema refuses, fails in one line that names the key
(dotted, as written in params.yaml) and what it accepts. The cases come from the schema itself, so a
key added later is covered without a new test."""

import copy
import re

import pytest
import yaml

from specimen import SpecimenError
from specimen.params import validate
from tests.conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def keys(schema: dict, path=()):
    """(path, subschema) for every property, depth first."""
    for name, sub in schema.get("properties", {}).items():
        yield path + (name,), sub
        yield from keys(sub, path + (name,))


def violation(sub: dict):
    """A value `sub` refuses, and the words its error must hold; None where no value is refused."""
    if "enum" in sub:
        return "not-an-option", [str(v) for v in sub["enum"]]
    if "oneOf" in sub:
        return {"not": "accepted"}, ["expected"]
    types = sub.get("type")
    if types == "object" and sub.get("additionalProperties") is False:
        return {**{k: v.get("default") for k, v in sub.get("properties", {}).items()}, "bogus": 1}, [
            "unknown key 'bogus'",
            *sub.get("properties", {}),
        ]
    if types == "integer" and "minimum" in sub:
        return sub["minimum"] - 1, [str(sub["minimum"])]
    if types == "number" and "exclusiveMinimum" in sub:
        return sub["exclusiveMinimum"], [str(sub["exclusiveMinimum"])]
    if types == "number" and "minimum" in sub:
        return sub["minimum"] - 1, [str(sub["minimum"])]
    if types in ("integer", "number", "boolean", "array"):
        return "text", ["expected"]
    if types == "string":
        return 12, ["expected a string"]
    return None


CASES = [(".".join(path), *v) for path, sub in keys(SCHEMA) if (v := violation(sub)) is not None]


def test_the_cases_cover_the_schema():
    assert len(CASES) > 60
    assert {"seed", "image.resize", "train.fine_tune.unfrozen_layers", "clean.quality.dark.action"} <= {
        c[0] for c in CASES
    }


@pytest.mark.parametrize("key, value, words", CASES, ids=[c[0] for c in CASES])
def test_a_refused_value_is_one_line_naming_the_key_and_what_it_accepts(key, value, words):
    params = copy.deepcopy(PARAMS)
    *parents, last = key.split(".")
    node = params
    for name in parents:
        node = node.setdefault(name, {})
        if node is None:  # an optional section left null
            pytest.fail(f"{key}: its parent is null in params.yaml")
    node[last] = value
    with pytest.raises(SpecimenError) as refused:
        validate(params, copy.deepcopy(SCHEMA))
    message = str(refused.value)
    assert "\n" not in message
    assert re.match(rf"params\.yaml: {re.escape(key)}(\[\d+\])*: ", message), message
    for word in words:
        assert word in message, message


def test_an_unquoted_off_or_on_means_the_word():
    """YAML 1.1 reads `action: off` as false: where the choices are words, it is read back as "off"
    (the comments in params.yaml write it unquoted), and so is `mixed_precision: on`."""
    text = (ROOT / "params.yaml").read_text()
    text = text.replace(
        "low_information: {threshold: 0.3, action: remove}", "low_information: {threshold: 0.3, action: off}"
    )
    text = text.replace("mixed_precision: auto ", "mixed_precision: on ")
    raw = yaml.safe_load(text)
    assert raw["clean"]["quality"]["low_information"]["action"] is False and raw["train"]["mixed_precision"] is True
    params = validate(raw, copy.deepcopy(SCHEMA))
    assert params["clean"]["quality"]["low_information"]["action"] == "off"
    assert params["train"]["mixed_precision"] == "on"
    assert params["clean"]["duplicates"]["exact"] is True  # a real boolean stays one


def test_xla_on_with_op_determinism_is_refused_in_one_line_not_dropped_with_a_warning():
    params = copy.deepcopy(PARAMS)
    params["train"].update(jit_compile="on", deterministic=True)
    with pytest.raises(
        SpecimenError, match=r"^params\.yaml: train\.jit_compile: 'on' needs train\.deterministic: false"
    ):
        validate(params, copy.deepcopy(SCHEMA))
    params["train"]["deterministic"] = False
    assert validate(params, copy.deepcopy(SCHEMA))["train"]["jit_compile"] == "on"
