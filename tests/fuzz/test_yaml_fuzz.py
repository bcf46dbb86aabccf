"""Fuzzing the YAML import (the service, and `manage.py templates import` on a file): a file either imports
or is refused whole with ImportProblem (CommandError from the command), naming what is wrong."""

import tempfile
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import event, given
from hypothesis import strategies as st

from edgeportal.prompts.yaml_io import FIELDS, ImportProblem, templates_export, templates_import
from tests.fuzz.strategies import FUZZ, NUMBERISH, TEXT

pytestmark = pytest.mark.django_db

YAML_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, NUMBERISH)
YAML_VALUE = st.recursive(
    YAML_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=10
)
VALID = {"slug": "notice", "title": "Notice", "body": "Line {line} in {minutes}.", "max_new_tokens": 16}
TEMPLATE = st.dictionaries(st.sampled_from([*FIELDS, "sources", "deadline_ms"]) | TEXT, YAML_VALUE, max_size=5).map(
    lambda changes: {**VALID, **changes}
)
VARIABLE = st.fixed_dictionaries(
    {"name": st.sampled_from(["line", "minutes"]) | TEXT},
    optional={
        "type": st.sampled_from(["text", "choice", "integer"]) | TEXT,
        "min": YAML_SCALAR,
        "max": YAML_SCALAR,
        "max_length": YAML_SCALAR,
        "choices": YAML_VALUE,
    },
)


def import_or_refuse(text: str) -> None:
    try:
        templates_import(text)
    except ImportProblem as problem:
        event("refused")
        assert str(problem)
    else:
        event("imported")


@FUZZ
@given(text=st.one_of(TEXT, st.text(max_size=500), YAML_VALUE.map(yaml.safe_dump)))
def test_any_text(text):
    import_or_refuse(text)


@FUZZ
@given(templates=st.lists(TEMPLATE, max_size=3), variables=st.lists(VARIABLE, max_size=3))
def test_any_fields_and_variables(templates, variables):
    if templates and variables:
        templates[0] = {**templates[0], "variables": variables}
    text = yaml.safe_dump({"templates": templates}, allow_unicode=True)
    import_or_refuse(text)
    templates_export()  # whatever was imported exports again


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), YAML_VALUE.map(lambda v: yaml.safe_dump(v).encode())))
def test_the_command_on_any_file(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "templates.yaml"
        path.write_bytes(raw)
        try:
            call_command("templates", "import", str(path))
        except CommandError as error:
            assert str(error).startswith(("nothing imported", "cannot read"))
