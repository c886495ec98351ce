"""Tests for tradewind.sdk.timezone: reading, naming and converting datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pendulum
import pytest
from dateutil import tz as dateutil_tz

from tradewind.errors import InvalidArgumentError
from tradewind.sdk.timezone import (
    coerce_datetime,
    parse_timezone,
    timezone_from_name,
    to_pendulum,
    to_utc,
    tz_name,
    utcnow,
)

AMS = ZoneInfo("Europe/Amsterdam")


class TestCoerceDatetime:
    def test_naive_datetime_is_taken_as_utc_by_default(self) -> None:
        result = coerce_datetime(datetime(2024, 1, 1, 6, 30))
        assert result == datetime(2024, 1, 1, 6, 30, tzinfo=UTC)
        assert result.tzinfo is UTC

    def test_naive_datetime_is_taken_as_wall_time_in_the_default_timezone(self) -> None:
        result = coerce_datetime(datetime(2024, 7, 1, 6, 30), default_tz="Europe/Amsterdam")
        assert result.utcoffset() == timedelta(hours=2)
        assert result.astimezone(UTC) == datetime(2024, 7, 1, 4, 30, tzinfo=UTC)

    def test_aware_datetime_keeps_its_timezone(self) -> None:
        value = datetime(2024, 1, 1, tzinfo=AMS)
        result = coerce_datetime(value, default_tz="Asia/Tokyo")
        assert result == value
        assert result.tzinfo is AMS

    def test_date_means_midnight_in_the_default_timezone(self) -> None:
        assert coerce_datetime(date(2024, 3, 5)) == datetime(2024, 3, 5, tzinfo=UTC)
        in_ams = coerce_datetime(date(2024, 3, 5), default_tz=AMS)
        assert (in_ams.hour, in_ams.tzinfo) == (0, AMS)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),
            ("2024-01-31T06:00:00Z", datetime(2024, 1, 31, 6, tzinfo=UTC)),
            ("2024-01-31T06:00:00+02:00", datetime(2024, 1, 31, 4, tzinfo=UTC)),
            (" 2024-01-31T06:00 ", datetime(2024, 1, 31, 6, tzinfo=UTC)),
        ],
    )
    def test_iso_strings_are_read(self, text: str, expected: datetime) -> None:
        result = coerce_datetime(text)
        assert result == expected
        assert result.tzinfo is not None

    def test_pendulum_datetime_becomes_a_plain_datetime_on_the_same_instant(self) -> None:
        value = pendulum.datetime(2024, 3, 31, 3, 30, tz="Europe/Amsterdam")
        result = coerce_datetime(value)
        assert type(result) is datetime
        assert type(result.tzinfo) is ZoneInfo
        assert tz_name(result.tzinfo) == "Europe/Amsterdam"
        assert result == value

    def test_a_bad_string_names_the_argument(self) -> None:
        with pytest.raises(InvalidArgumentError, match="start_date 'tomorrow' is not an ISO 8601"):
            coerce_datetime("tomorrow", argument="start_date")

    def test_a_bad_type_is_rejected(self) -> None:
        with pytest.raises(InvalidArgumentError, match="not int 5"):
            coerce_datetime(5)


class TestParseTimezone:
    def test_iana_name(self) -> None:
        assert parse_timezone("Europe/Amsterdam") == AMS

    @pytest.mark.parametrize("name", ["UTC", "utc", "Z", "+00:00"])
    def test_utc_spellings_give_the_utc_constant(self, name: str) -> None:
        assert parse_timezone(name) is UTC

    @pytest.mark.parametrize(
        ("name", "offset"),
        [
            ("+05:30", timedelta(hours=5, minutes=30)),
            ("-0800", timedelta(hours=-8)),
            ("+05:30:15", timedelta(hours=5, minutes=30, seconds=15)),
        ],
    )
    def test_fixed_offsets(self, name: str, offset: timedelta) -> None:
        assert parse_timezone(name).utcoffset(None) == offset

    def test_unknown_name_is_a_clear_error(self) -> None:
        with pytest.raises(InvalidArgumentError, match="unknown timezone 'Mars/Olympus'") as info:
            parse_timezone("Mars/Olympus")
        assert info.value.argument == "timezone"

    def test_offset_of_a_day_or_more_is_rejected(self) -> None:
        with pytest.raises(InvalidArgumentError, match="less than 24 hours"):
            parse_timezone("+24:00")

    def test_pendulum_timezones_become_standard_library_ones(self) -> None:
        assert type(parse_timezone(pendulum.timezone("Europe/Amsterdam"))) is ZoneInfo
        assert parse_timezone(pendulum.UTC) is UTC
        fixed = parse_timezone(pendulum.FixedTimezone(19800))
        assert type(fixed) is timezone
        assert fixed.utcoffset(None) == timedelta(hours=5, minutes=30)

    def test_dateutil_zone_becomes_zoneinfo(self) -> None:
        zone = dateutil_tz.gettz("Europe/Amsterdam")
        assert zone is not None
        assert parse_timezone(zone) == AMS

    def test_not_a_timezone(self) -> None:
        with pytest.raises(InvalidArgumentError, match="timezone must be a name"):
            parse_timezone(3)  # type: ignore[arg-type]


class TestNames:
    @pytest.mark.parametrize(
        ("tz", "name"),
        [
            (AMS, "Europe/Amsterdam"),
            (UTC, "UTC"),
            (ZoneInfo("UTC"), "UTC"),
            (timezone(timedelta(hours=5, minutes=30)), "+05:30"),
            (timezone(timedelta(hours=-8)), "-08:00"),
            (timezone(timedelta(hours=1, seconds=15)), "+01:00:15"),
            (timezone(timedelta(0)), "UTC"),
            (pendulum.timezone("America/New_York"), "America/New_York"),
        ],
    )
    def test_tz_name(self, tz: timezone, name: str) -> None:
        assert tz_name(tz) == name

    @pytest.mark.parametrize(
        "name", ["Europe/Amsterdam", "America/New_York", "UTC", "+05:30", "-03:00", "+01:00:15"]
    )
    def test_round_trip_keeps_offsets_at_every_season(self, name: str) -> None:
        tz = timezone_from_name(name)
        again = timezone_from_name(tz_name(tz))
        for month in (1, 7):
            instant = datetime(2024, month, 1, 12, tzinfo=UTC)
            assert instant.astimezone(tz).utcoffset() == instant.astimezone(again).utcoffset()

    def test_zone_without_key_cannot_be_named(self) -> None:
        with open("/usr/share/zoneinfo/Europe/Amsterdam", "rb") as handle:
            keyless = ZoneInfo.from_file(handle)
        with pytest.raises(InvalidArgumentError, match="no IANA key"):
            tz_name(keyless)


class TestConversions:
    def test_to_utc_converts_aware_values(self) -> None:
        result = to_utc(datetime(2024, 7, 1, 12, tzinfo=AMS))
        assert result == datetime(2024, 7, 1, 10, tzinfo=UTC)
        assert result.tzinfo is UTC

    def test_to_utc_reads_naive_values_in_the_default_timezone(self) -> None:
        assert to_utc(datetime(2024, 1, 1, 12), "Europe/Amsterdam") == datetime(
            2024, 1, 1, 11, tzinfo=UTC
        )

    def test_utcnow_is_aware_utc(self) -> None:
        assert utcnow().tzinfo is UTC

    def test_to_pendulum_keeps_instant_and_zone(self) -> None:
        value = datetime(2024, 7, 1, 12, tzinfo=AMS)
        result = to_pendulum(value)
        assert isinstance(result, pendulum.DateTime)
        assert result == value
        assert result.timezone_name == "Europe/Amsterdam"
