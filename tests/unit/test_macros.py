"""Template macros: date helpers and the lazy ``macros`` namespace."""

from __future__ import annotations

import datetime as dt

import pytest

from tradewind.sdk import macros as macros_module
from tradewind.sdk.macros import MacrosNamespace, ds_add, ds_format, macros


@pytest.mark.parametrize(
    ("ds", "days", "expected"),
    [
        ("2024-01-30", 5, "2024-02-04"),
        ("2024-03-01", -1, "2024-02-29"),
        ("2024-01-01", 0, "2024-01-01"),
    ],
)
def test_ds_add(ds: str, days: int, expected: str) -> None:
    assert ds_add(ds, days) == expected


def test_ds_add_rejects_a_bad_date_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="ds_add expects a date string"):
        ds_add("01/02/2024", 1)


def test_ds_format() -> None:
    assert ds_format("2024-01-05", "%Y-%m-%d", "%m/%d/%y") == "01/05/24"
    with pytest.raises(ValueError, match="cannot read"):
        ds_format("nope", "%Y-%m-%d", "%d")


def test_datetime_diff_for_humans_with_an_injected_since() -> None:
    then = dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)
    since = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    assert macros.datetime_diff_for_humans(then, since) == "2 hours before"
    assert macros.datetime_diff_for_humans(since, then) == "2 hours after"


def test_namespace_exposes_modules_and_functions() -> None:
    # given the shared namespace / expect Airflow-compatible attributes
    assert macros.datetime is dt.datetime
    assert macros.timedelta is dt.timedelta
    assert macros.json.loads("[1]") == [1]
    assert len(str(macros.uuid.uuid4())) == 36
    assert 0.0 <= macros.random() < 1.0
    assert macros.time.time() > 0
    relativedelta = macros.dateutil.relativedelta.relativedelta
    assert dt.date(2024, 1, 31) + relativedelta(months=1) == dt.date(2024, 2, 29)
    assert macros.ds_add("2024-01-01", 1) == "2024-01-02"


def test_unknown_macro_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_macro"):
        _ = macros.no_such_macro


def test_with_extra_adds_macros_without_changing_the_shared_namespace() -> None:
    custom = macros.with_extra(double=lambda x: 2 * x)
    assert custom.double(4) == 8
    assert "double" in dir(custom)
    assert not hasattr(macros, "double")
    assert isinstance(custom, MacrosNamespace)


def test_module_level_lazy_attributes() -> None:
    assert macros_module.json.dumps({"a": 1}) == '{"a": 1}'
    with pytest.raises(AttributeError):
        _ = macros_module.not_a_macro
