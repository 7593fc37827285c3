"""Parameter specs from signatures, value checks and keyword checks."""

from __future__ import annotations

import datetime
import json
import re
import typing
from datetime import date, time, timedelta
from typing import Any

import pytest

from scheduler_app.exceptions import ParameterError
from scheduler_app.handlers.params import (
    ParamSpec,
    check_kwargs,
    coerce_value,
    default_expression,
    specs_from_callable,
)
from tests.sample_handlers import registry


def make_spec(
    type_name: str, *, optional: bool = False, name: str = "days"
) -> ParamSpec:
    return ParamSpec(
        name=name,
        type_name=type_name,
        optional=optional,
        required=True,
        default=None,
        default_expression="",
        label=name,
        help_text="",
        kind="positional_or_keyword",
    )


def by_name(func: Any, **kwargs: Any) -> dict[str, ParamSpec]:
    specs, _accepts = specs_from_callable(func, **kwargs)
    return {spec.name: spec for spec in specs}


# Signatures


async def data_sync(
    days: int = 7,
    target: str = "all",
    start_date: datetime.datetime | None = None,
    options: dict | None = None,
) -> dict:
    return {}


def test_specs_follow_the_seed_script_signature() -> None:
    specs, accepts_var_kwargs = specs_from_callable(data_sync)

    assert accepts_var_kwargs is False
    assert [spec.to_dict() for spec in specs] == [
        {
            "name": "days",
            "type_name": "int",
            "optional": False,
            "required": False,
            "default": 7,
            "default_expression": "7",
            "label": "days",
            "help_text": "",
            "kind": "positional_or_keyword",
        },
        {
            "name": "target",
            "type_name": "str",
            "optional": False,
            "required": False,
            "default": "all",
            "default_expression": "'all'",
            "label": "target",
            "help_text": "",
            "kind": "positional_or_keyword",
        },
        {
            "name": "start_date",
            "type_name": "datetime",
            "optional": True,
            "required": False,
            "default": None,
            "default_expression": "None",
            "label": "start_date",
            "help_text": "",
            "kind": "positional_or_keyword",
        },
        {
            "name": "options",
            "type_name": "dict",
            "optional": True,
            "required": False,
            "default": None,
            "default_expression": "None",
            "label": "options",
            "help_text": "",
            "kind": "positional_or_keyword",
        },
    ]


def test_labels_and_help_come_from_param_info() -> None:
    specs = by_name(
        data_sync,
        param_info={"days": {"label": "Days back", "help": "How far to look."}},
    )

    assert specs["days"].label == "Days back"
    assert specs["days"].help_text == "How far to look."
    assert specs["target"].label == "target"
    assert specs["target"].help_text == ""


def test_self_cls_and_var_args_are_skipped_and_var_kwargs_is_reported() -> None:
    class Handler:
        def run(self, *args: Any, since: date, limit: int = 3, **kwargs: Any) -> None:
            pass

    specs, accepts_var_kwargs = specs_from_callable(Handler.run)

    assert [spec.name for spec in specs] == ["since", "limit"]
    assert accepts_var_kwargs is True
    assert specs[0].required is True
    assert specs[0].default is None
    assert specs[0].default_expression == ""
    assert specs[0].kind == "keyword_only"


def test_handler_taking_only_var_kwargs_has_no_specs() -> None:
    def run(**kwargs: Any) -> dict:
        return kwargs

    assert specs_from_callable(run) == ([], True)


def test_required_positional_only_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="positional-only"):
        specs_from_callable(registry.positional_only)


def test_positional_only_parameter_with_default_is_left_out() -> None:
    def run(a: int = 1, /, b: int = 2) -> None:
        pass

    assert list(by_name(run)) == ["b"]


def test_real_object_annotations_map_to_type_names() -> None:
    specs = by_name(registry.real_annotations)

    assert {name: (spec.type_name, spec.optional) for name, spec in specs.items()} == {
        "count": ("int", False),
        "ratio": ("float", False),
        "since": ("datetime", True),
        "window": ("timedelta", False),
        "at": ("time", False),
        "tags": ("list", False),
        "options": ("dict", True),
        "anything": ("any", True),
    }
    assert specs["window"].default_expression == "timedelta(seconds=21600)"
    assert specs["at"].default_expression == "time(8, 30)"
    assert specs["tags"].default_expression == "['a']"


def string_annotations(
    a: int | None,
    b: int | None,
    c: None | str,
    d: datetime.date,
    e: date,
    f: time,
    g: timedelta,
    h: list[int],
    i: dict[str, int],
    j: list[str],
    k: bool,
    m: int | str,
    n: Any,
    o,
    p: typing.Annotated[int, "meta"],
    q: tuple,
) -> None:
    pass


def test_string_annotations_are_resolved() -> None:
    specs = by_name(string_annotations)

    assert {name: (spec.type_name, spec.optional) for name, spec in specs.items()} == {
        "a": ("int", True),
        "b": ("int", True),
        "c": ("str", True),
        "d": ("date", False),
        "e": ("date", False),
        "f": ("time", False),
        "g": ("timedelta", False),
        "h": ("list", False),
        "i": ("dict", False),
        "j": ("list", False),
        "k": ("bool", False),
        "m": ("any", False),
        "n": ("any", False),
        "o": ("any", False),
        "p": ("int", False),
        "q": ("any", False),
    }


def unresolvable(
    when: NoSuchType = None,  # type: ignore[name-defined] # noqa: F821
    days: int = 1,
    cut: "1 +" = 0,  # type: ignore[valid-type] # noqa: F722 - not an expression
) -> None:
    pass


def test_unresolvable_annotation_becomes_any_without_losing_the_others() -> None:
    specs = by_name(unresolvable)

    assert specs["when"].type_name == "any"
    assert specs["cut"].type_name == "any"
    assert specs["days"].type_name == "int"


def test_spec_to_dict_is_json_safe() -> None:
    def run(since: datetime.datetime = datetime.datetime(2024, 1, 1)) -> None:
        pass

    spec = by_name(run)["since"]

    assert spec.default_expression == "datetime(2024, 1, 1, 0, 0)"
    assert json.loads(json.dumps(spec.to_dict()))["default"] == "2024-01-01T00:00:00"


@pytest.mark.parametrize(
    ("default", "expression"),
    [
        (7, "7"),
        (-1.5, "-1.5"),
        ("all", "'all'"),
        (None, "None"),
        (True, "True"),
        ([1, "a"], "[1, 'a']"),
        ((1,), "(1,)"),
        ({"k": [None]}, "{'k': [None]}"),
        (datetime.datetime(2024, 1, 1), "datetime(2024, 1, 1, 0, 0)"),
        (date(2024, 1, 1), "date(2024, 1, 1)"),
        (time(8, 30), "time(8, 30)"),
        (timedelta(days=7), "timedelta(days=7)"),
        # No expression for these: the handler's own default then applies.
        (datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), ""),
        (float("inf"), ""),
        (object(), ""),
        ([1, object()], ""),
    ],
)
def test_default_expression_writes_defaults_as_expressions(
    default: Any, expression: str
) -> None:
    assert default_expression(default) == expression


# Values


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("int", 7, 7),
        ("int", -3, -3),
        ("float", 2, 2.0),
        ("float", 2.5, 2.5),
        ("str", "abc", "abc"),
        ("bool", False, False),
        ("list", [1, 2], [1, 2]),
        ("list", (1, 2), [1, 2]),
        ("dict", {"a": 1}, {"a": 1}),
        (
            "datetime",
            datetime.datetime(2024, 1, 1, 8, 0),
            datetime.datetime(2024, 1, 1, 8, 0),
        ),
        ("datetime", date(2024, 1, 1), datetime.datetime(2024, 1, 1, 0, 0)),
        ("datetime", "2024-01-01T08:00", datetime.datetime(2024, 1, 1, 8, 0)),
        (
            "datetime",
            "2024-01-01T08:00:00+00:00",
            datetime.datetime(2024, 1, 1, 8, 0, tzinfo=datetime.UTC),
        ),
        ("date", date(2024, 1, 1), date(2024, 1, 1)),
        ("date", datetime.datetime(2024, 1, 1), date(2024, 1, 1)),
        ("date", "2024-01-01", date(2024, 1, 1)),
        ("time", time(8, 30), time(8, 30)),
        ("time", "08:30", time(8, 30)),
        ("time", "08:30:15", time(8, 30, 15)),
        ("timedelta", timedelta(days=1), timedelta(days=1)),
        ("timedelta", 90, timedelta(seconds=90)),
        ("timedelta", 1.5, timedelta(seconds=1.5)),
        ("any", object, object),
        ("any", None, None),
    ],
)
def test_coerce_value_accepts_and_converts(
    type_name: str, value: Any, expected: Any
) -> None:
    result = coerce_value(make_spec(type_name), value)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("type_name", "value", "message"),
    [
        ("int", "abc", "Parameter “days”: expected an integer, got 'abc' (str)."),
        ("int", True, "Parameter “days”: expected an integer, got True (bool)."),
        ("int", 7.0, "Parameter “days”: expected an integer, got 7.0 (float)."),
        ("float", "1.5", "expected a number, got '1.5' (str)"),
        ("float", False, "expected a number, got False (bool)"),
        ("str", 5, "expected a string, got 5 (int)"),
        ("bool", 1, "expected True or False, got 1 (int)"),
        ("bool", "True", "expected True or False, got 'True' (str)"),
        ("list", {1, 2}, "expected a list, got {1, 2} (set)"),
        ("list", "abc", "expected a list"),
        ("dict", [("a", 1)], "expected a dict"),
        ("datetime", "yesterday", "expected a datetime, a date or an ISO 8601 string"),
        ("datetime", 1704067200, "got 1704067200 (int)"),
        ("datetime", time(8), "expected a datetime"),
        (
            "date",
            datetime.datetime(2024, 1, 1, 8, 0),
            "(2024-01-01T08:00:00); use .date()",
        ),
        ("date", "2024-01-01T08:00", "expected a date or an ISO 8601 date string"),
        ("date", 20240101, "expected a date"),
        ("time", "8h30", "expected a time or a string such as '08:30'"),
        ("time", 830, "expected a time"),
        ("timedelta", "7 days", "expected a timedelta or a number of seconds"),
        ("timedelta", True, "expected a timedelta"),
        ("timedelta", 10**20, "expected a timedelta"),
    ],
)
def test_coerce_value_refuses_with_a_message_naming_the_parameter(
    type_name: str, value: Any, message: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)) as excinfo:
        coerce_value(make_spec(type_name), value)

    assert excinfo.value.field == "days"
    assert str(excinfo.value).startswith("Parameter “days”")


def test_coerce_value_cuts_long_values_in_the_message() -> None:
    with pytest.raises(ParameterError) as excinfo:
        coerce_value(make_spec("int"), "x" * 1000)

    assert len(str(excinfo.value)) < 200


def test_optional_parameter_accepts_none() -> None:
    assert coerce_value(make_spec("int", optional=True), None) is None


def test_non_optional_parameter_refuses_none() -> None:
    with pytest.raises(ParameterError, match="Parameter “days” may not be None") as exc:
        coerce_value(make_spec("int"), None)

    assert exc.value.field == "days"


def test_parameter_defaulting_to_none_accepts_none() -> None:
    def run(limit: int = None) -> None:  # type: ignore[assignment]
        pass

    spec = by_name(run)["limit"]

    assert spec.optional is True
    assert coerce_value(spec, None) is None


# Keyword names


def test_check_kwargs_accepts_known_names_and_defaults() -> None:
    specs, _accepts = specs_from_callable(data_sync)

    check_kwargs(specs, ["days"], accepts_var_kwargs=False)
    check_kwargs(specs, [], accepts_var_kwargs=False)


def test_check_kwargs_refuses_an_unknown_name_and_lists_the_known_ones() -> None:
    specs, _accepts = specs_from_callable(data_sync)

    with pytest.raises(ParameterError, match="Parameter “dayz”") as excinfo:
        check_kwargs(specs, ["days", "dayz"], accepts_var_kwargs=False)

    assert excinfo.value.field == "dayz"
    assert "days, target, start_date, options" in str(excinfo.value)


def test_check_kwargs_accepts_unknown_names_with_var_kwargs() -> None:
    specs, _accepts = specs_from_callable(data_sync)

    check_kwargs(specs, ["anything"], accepts_var_kwargs=True)


def test_check_kwargs_refuses_a_missing_required_parameter() -> None:
    def run(since: date, days: int = 1) -> None:
        pass

    specs, _accepts = specs_from_callable(run)

    with pytest.raises(ParameterError, match="Parameter “since” is required") as exc:
        check_kwargs(specs, ["days"], accepts_var_kwargs=True)

    assert exc.value.field == "since"
    assert "Known parameters: since, days." in str(exc.value)


def test_check_kwargs_says_when_there_are_no_parameters() -> None:
    with pytest.raises(ParameterError, match=r"Known parameters: \(none\)"):
        check_kwargs([], ["days"], accepts_var_kwargs=False)
