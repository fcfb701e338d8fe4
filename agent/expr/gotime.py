"""Go's ``time`` values as the expression language sees them.

expr-lang hands Go's ``time.Time``, ``time.Duration`` and ``*time.Location`` straight
to expressions (``now()``, ``duration("1h")``, ``date("2023-08-14")``), and they keep Go's
behaviour: nanosecond precision, layouts written as the reference time
``Mon Jan 2 15:04:05 MST 2006``, ``String()`` forms like ``1h0m0s``. Python's
``datetime`` has neither, so this module models the three types directly:

* :class:`GoDuration` is an ``int`` of nanoseconds (Go's ``Duration`` is an ``int64``),
  so it takes part in integer arithmetic and comparisons and prints like Go.
* :class:`GoTime` is an instant (Unix seconds + nanoseconds) plus a :class:`GoLocation`.
* :func:`parse_layout` / :func:`format_layout` implement Go's layout language for the
  chunks people use (the full list is in ``_CHUNKS``).

:func:`parse_duration` is :func:`agent.core.duration.parse_duration_nanos` with Go's error
messages; ``retryStrategy.backoff`` durations go through it too.
"""

from __future__ import annotations

import datetime as _dt
import re
import time as _time
import zoneinfo
from dataclasses import dataclass
from typing import Any

from agent.core.duration import DurationError, parse_duration_nanos

from .errors import Panic

__all__ = [
    "RFC822",
    "RFC850",
    "RFC1123",
    "RFC3339",
    "RFC3339_NANO",
    "GoDuration",
    "GoLocation",
    "GoMonth",
    "GoTime",
    "GoWeekday",
    "TimeError",
    "format_layout",
    "load_location",
    "now",
    "parse_duration",
    "parse_layout",
]

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
RFC822 = "02 Jan 06 15:04 MST"
RFC850 = "Monday, 02-Jan-06 15:04:05 MST"
RFC1123 = "Mon, 02 Jan 2006 15:04:05 MST"

_US = 1_000
_MS = 1_000_000
_S = 1_000_000_000
_M = 60 * _S
_H = 60 * _M
_INT64_MAX = 2**63 - 1

_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


class TimeError(Panic, ValueError):
    """A duration, layout or location that Go's ``time`` package would reject."""


class GoDuration(int):
    """``time.Duration``: an int64 count of nanoseconds that prints like Go."""

    def __str__(self) -> str:
        return duration_string(int(self))

    __repr__ = __str__

    def hours(self) -> float:
        return _split(int(self), _H)

    def minutes(self) -> float:
        return _split(int(self), _M)

    def seconds(self) -> float:
        return _split(int(self), _S)


def _split(nanos: int, unit: int) -> float:
    # Go: whole units by truncating division, plus the remainder as a fraction.
    whole = -((-nanos) // unit) if nanos < 0 else nanos // unit
    return float(whole) + (nanos - whole * unit) / unit


class GoMonth(int):
    """``time.Month``: compares as a number, prints as its English name."""

    def __str__(self) -> str:
        return _MONTHS[int(self) - 1] if 1 <= int(self) <= 12 else f"%!Month({int(self)})"

    __repr__ = __str__


class GoWeekday(int):
    """``time.Weekday``: Sunday is 0; prints as its English name."""

    def __str__(self) -> str:
        return _DAYS[int(self)] if 0 <= int(self) <= 6 else f"%!Weekday({int(self)})"

    __repr__ = __str__


@dataclass(frozen=True, slots=True)
class GoLocation:
    """``*time.Location``: a name and the tzinfo that gives its offsets."""

    name: str
    tz: _dt.tzinfo

    def __str__(self) -> str:
        return self.name


UTC = GoLocation("UTC", _dt.UTC)


def _local_location() -> GoLocation:
    tz = _dt.datetime.now().astimezone().tzinfo or _dt.UTC
    return GoLocation("Local", tz)


LOCAL = _local_location()


def load_location(name: str) -> GoLocation:
    """``time.LoadLocation``: "" and "UTC" are UTC, "Local" is the host zone."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return LOCAL
    try:
        return GoLocation(name, zoneinfo.ZoneInfo(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeError(f"unknown time zone {name}") from None


@dataclass(frozen=True, slots=True)
class GoTime:
    """``time.Time``: an instant with nanosecond precision, seen in a location."""

    sec: int  # Unix seconds
    nsec: int  # 0..999_999_999
    loc: GoLocation = UTC

    @staticmethod
    def from_datetime(value: _dt.datetime, loc: GoLocation, nsec: int = 0) -> GoTime:
        whole = int(value.replace(microsecond=0).timestamp())
        return GoTime(whole, value.microsecond * 1000 + nsec, loc)

    def local(self) -> _dt.datetime:
        """Wall-clock fields in the location (microseconds dropped; see ``nsec``)."""
        try:
            return _dt.datetime.fromtimestamp(self.sec, self.loc.tz)
        except (OverflowError, ValueError, OSError):
            raise TimeError("time out of the supported range (years 1 to 9999)") from None

    def unix_nano(self) -> int:
        return self.sec * _S + self.nsec

    def add(self, nanos: int) -> GoTime:
        total = self.unix_nano() + nanos
        return GoTime(total // _S, total % _S, self.loc)

    def sub(self, other: GoTime) -> GoDuration:
        diff = self.unix_nano() - other.unix_nano()
        return GoDuration(max(-_INT64_MAX - 1, min(_INT64_MAX, diff)))

    def in_location(self, loc: GoLocation) -> GoTime:
        return GoTime(self.sec, self.nsec, loc)

    def offset(self) -> tuple[str, int]:
        local = self.local()
        delta = local.utcoffset() or _dt.timedelta(0)
        name = local.tzname() or ""
        seconds = int(delta.total_seconds())
        if self.loc is UTC or self.loc.name == "UTC":
            name = "UTC"
        return name, seconds

    def __str__(self) -> str:
        return format_layout(self, "2006-01-02 15:04:05.999999999 -0700 MST")

    __repr__ = __str__


def now() -> GoTime:
    nanos = _time.time_ns()
    return GoTime(nanos // _S, nanos % _S, LOCAL)


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> GoDuration:
    """``time.ParseDuration``: ``"1h30m"``, ``"-1.5s"``, ``"300ms"``; errors worded as Go."""
    try:
        return GoDuration(parse_duration_nanos(text))
    except DurationError as exc:
        quoted = _go_quote(exc.text)
        if exc.reason == "unknown unit":
            raise TimeError(
                f"time: unknown unit {_go_quote(exc.unit)} in duration {quoted}"
            ) from None
        if exc.reason == "missing unit":
            raise TimeError(f"time: missing unit in duration {quoted}") from None
        raise TimeError(f"time: invalid duration {quoted}") from None


def duration_string(nanos: int) -> str:
    """``Duration.String()``: ``1h0m0s``, ``1.5s``, ``100ms``, ``0s``."""
    if nanos == 0:
        return "0s"
    negative = nanos < 0
    value = -nanos if negative else nanos
    if value < _S:
        if value < _US:
            body = f"{value}ns"
        elif value < _MS:
            body = _fraction(value, _US) + "µs"
        else:
            body = _fraction(value, _MS) + "ms"
    else:
        hours, rest = divmod(value, _H)
        minutes, rest = divmod(rest, _M)
        seconds = _fraction(rest, _S) + "s"
        if hours:
            body = f"{hours}h{minutes}m{seconds}"
        elif minutes:
            body = f"{minutes}m{seconds}"
        else:
            body = seconds
    return ("-" if negative else "") + body


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------- layouts

# Go's layout chunks, longest first where they share a prefix (time.nextStdChunk).
_CHUNKS = [
    "January", "Jan", "Monday", "Mon", "MST",
    "2006", "002", "__2", "_2", "01", "02", "03", "04", "05", "06",
    "15", "1", "2", "3", "4", "5", "PM", "pm",
    "-07:00:00", "-070000", "-07:00", "-0700", "-07",
    "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07",
]  # fmt: skip
_FRACTION = re.compile(r"[.,](0+|9+)(?![0-9])")


def _tokenize(layout: str) -> list[tuple[str, str]]:
    """Split a layout into ("lit", text) and ("std", chunk) parts."""
    parts: list[tuple[str, str]] = []
    literal = ""
    i = 0
    while i < len(layout):
        frac = _FRACTION.match(layout, i)
        if frac:
            if literal:
                parts.append(("lit", literal))
                literal = ""
            parts.append(("frac", frac.group(0)))
            i = frac.end()
            continue
        for chunk in _CHUNKS:
            if layout.startswith(chunk, i):
                # "_2006" is a literal underscore followed by the year.
                if chunk == "_2" and layout.startswith("_2006", i):
                    continue
                if literal:
                    parts.append(("lit", literal))
                    literal = ""
                parts.append(("std", chunk))
                i += len(chunk)
                break
        else:
            literal += layout[i]
            i += 1
    if literal:
        parts.append(("lit", literal))
    return parts


def format_layout(value: GoTime, layout: str) -> str:
    """``Time.Format``."""
    local = value.local()
    zone_name, offset = value.offset()
    out: list[str] = []
    for kind, chunk in _tokenize(layout):
        if kind == "lit":
            out.append(chunk)
        elif kind == "frac":
            digits = len(chunk) - 1
            text = f"{value.nsec:09d}"[:digits]
            if chunk[1] == "9":
                text = text.rstrip("0")
                out.append(chunk[0] + text if text else "")
            else:
                out.append(chunk[0] + text)
        else:
            out.append(_format_chunk(chunk, local, zone_name, offset))
    return "".join(out)


def _format_chunk(chunk: str, t: _dt.datetime, zone_name: str, offset: int) -> str:
    hour12 = t.hour % 12 or 12
    simple: dict[str, str] = {
        "January": _MONTHS[t.month - 1],
        "Jan": _MONTHS[t.month - 1][:3],
        "Monday": _DAYS[(t.weekday() + 1) % 7],
        "Mon": _DAYS[(t.weekday() + 1) % 7][:3],
        "2006": f"{t.year:04d}",
        "06": f"{t.year % 100:02d}",
        "01": f"{t.month:02d}",
        "1": str(t.month),
        "02": f"{t.day:02d}",
        "2": str(t.day),
        "_2": f"{t.day:>2d}",
        "002": f"{t.timetuple().tm_yday:03d}",
        "__2": f"{t.timetuple().tm_yday:>3d}",
        "15": f"{t.hour:02d}",
        "03": f"{hour12:02d}",
        "3": str(hour12),
        "04": f"{t.minute:02d}",
        "4": str(t.minute),
        "05": f"{t.second:02d}",
        "5": str(t.second),
        "PM": "PM" if t.hour >= 12 else "AM",
        "pm": "pm" if t.hour >= 12 else "am",
    }
    if chunk in simple:
        return simple[chunk]
    if chunk == "MST":
        if zone_name and zone_name[0].isalpha():
            return zone_name
        return _offset_text(offset, "-0700")
    if chunk.startswith("Z") and offset == 0:
        return "Z"
    return _offset_text(offset, chunk.lstrip("Z").replace("Z", "") or "-07")


def _offset_text(offset: int, style: str) -> str:
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    hours, rest = divmod(offset, 3600)
    minutes, seconds = divmod(rest, 60)
    style = style.lstrip("-")
    if style == "07":
        return f"{sign}{hours:02d}"
    if style == "0700":
        return f"{sign}{hours:02d}{minutes:02d}"
    if style == "07:00":
        return f"{sign}{hours:02d}:{minutes:02d}"
    if style == "070000":
        return f"{sign}{hours:02d}{minutes:02d}{seconds:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"


def parse_layout(layout: str, text: str, *, location: GoLocation | None = None) -> GoTime:
    """``time.Parse`` (``location`` None) or ``time.ParseInLocation``."""
    fields: dict[str, Any] = {
        "year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0,
        "nsec": 0, "pm": None, "offset": None, "zone": None, "yday": None,
    }  # fmt: skip
    rest = text
    err_prefix = f"parsing time {_go_quote(text)} as {_go_quote(layout)}"

    def fail(elem: str, value: str, extra: str = "") -> TimeError:
        if extra:
            return TimeError(f"{err_prefix}{extra}")
        return TimeError(f"{err_prefix}: cannot parse {_go_quote(value)} as {_go_quote(elem)}")

    for kind, chunk in _tokenize(layout):
        if kind == "lit":
            if not rest.startswith(chunk):
                raise fail(chunk, rest)
            rest = rest[len(chunk) :]
            continue
        if kind == "frac":
            match = re.match(r"[.,]([0-9]+)", rest)
            if chunk[1] == "0":
                need = len(chunk) - 1
                match = re.match(f"[.,]([0-9]{{{need}}})", rest)
            if match:
                digits = match.group(1)[:9].ljust(9, "0")
                fields["nsec"] = int(digits)
                rest = rest[match.end() :]
            elif chunk[1] == "0":
                raise fail(chunk, rest)
            continue
        rest = _parse_chunk(chunk, rest, fields, fail)
        # Go also accepts fractional seconds after "05" even when the layout has none.
        if chunk in ("05", "5") and re.match(r"[.,][0-9]", rest):
            match = re.match(r"[.,]([0-9]+)", rest)
            if match and not _layout_has_fraction(layout):
                fields["nsec"] = int(match.group(1)[:9].ljust(9, "0"))
                rest = rest[match.end() :]
    if rest:
        raise TimeError(f"{err_prefix}: extra text: {_go_quote(rest)}")
    return _assemble(fields, location, err_prefix)


def _layout_has_fraction(layout: str) -> bool:
    return any(kind == "frac" for kind, _ in _tokenize(layout))


def _take_digits(text: str, minimum: int, maximum: int) -> tuple[int, str] | None:
    match = re.match(f"[0-9]{{{minimum},{maximum}}}", text)
    if not match:
        return None
    return int(match.group(0)), text[match.end() :]


def _parse_chunk(chunk: str, rest: str, fields: dict[str, Any], fail: Any) -> str:
    numeric: dict[str, tuple[str, int, int]] = {
        "2006": ("year", 4, 4), "01": ("month", 2, 2), "1": ("month", 1, 2),
        "02": ("day", 2, 2), "2": ("day", 1, 2), "15": ("hour", 1, 2),
        "03": ("hour", 2, 2), "3": ("hour", 1, 2), "04": ("minute", 2, 2),
        "4": ("minute", 1, 2), "05": ("second", 2, 2), "5": ("second", 1, 2),
        "002": ("yday", 3, 3),
    }  # fmt: skip
    if chunk in numeric:
        name, low, high = numeric[chunk]
        taken = _take_digits(rest, low, high)
        if taken is None:
            raise fail(chunk, rest)
        fields[name] = taken[0]
        return taken[1]
    if chunk == "_2":
        stripped = rest[1:] if rest.startswith(" ") else rest
        taken = _take_digits(stripped, 1, 2)
        if taken is None:
            raise fail(chunk, rest)
        fields["day"] = taken[0]
        return taken[1]
    if chunk == "06":
        taken = _take_digits(rest, 2, 2)
        if taken is None:
            raise fail(chunk, rest)
        year = taken[0]
        fields["year"] = year + (1900 if year >= 69 else 2000)
        return taken[1]
    if chunk in ("January", "Jan", "Monday", "Mon"):
        names = _MONTHS if chunk.startswith("J") else _DAYS
        for index, name in enumerate(names):
            candidate = name if len(chunk) > 3 else name[:3]
            if rest[: len(candidate)].lower() == candidate.lower():
                if chunk.startswith("J"):
                    fields["month"] = index + 1
                return rest[len(candidate) :]
        raise fail(chunk, rest)
    if chunk in ("PM", "pm"):
        marker = rest[:2].upper()
        if marker not in ("AM", "PM"):
            raise fail(chunk, rest)
        fields["pm"] = marker == "PM"
        return rest[2:]
    if chunk == "MST":
        match = re.match(r"[A-Z]{3,5}|[+-][0-9]{1,4}", rest)
        if not match:
            raise fail(chunk, rest)
        fields["zone"] = match.group(0)
        return rest[match.end() :]
    # numeric zone offsets
    if chunk.startswith("Z") and rest.startswith("Z"):
        fields["offset"] = 0
        return rest[1:]
    style = chunk.lstrip("Z").lstrip("-")
    patterns = {
        "07": r"([+-])([0-9]{2})",
        "0700": r"([+-])([0-9]{2})([0-9]{2})",
        "07:00": r"([+-])([0-9]{2}):([0-9]{2})",
        "070000": r"([+-])([0-9]{2})([0-9]{2})([0-9]{2})",
        "07:00:00": r"([+-])([0-9]{2}):([0-9]{2}):([0-9]{2})",
    }
    match = re.match(patterns[style], rest)
    if not match:
        raise fail(chunk, rest)
    groups = match.groups()
    seconds = int(groups[1]) * 3600
    if len(groups) > 2:
        seconds += int(groups[2]) * 60
    if len(groups) > 3:
        seconds += int(groups[3])
    fields["offset"] = -seconds if groups[0] == "-" else seconds
    return rest[match.end() :]


def _bad_field(hour: int, minute: int) -> str:
    return "hour" if hour > 23 else "minute" if minute > 59 else "second"


def _assemble(fields: dict[str, Any], location: GoLocation | None, err_prefix: str) -> GoTime:
    hour = fields["hour"]
    if fields["pm"] is not None:
        if hour > 12:
            raise TimeError(f"{err_prefix}: hour out of range")
        if fields["pm"] and hour < 12:
            hour += 12
        elif not fields["pm"] and hour == 12:
            hour = 0
    if fields["yday"] is not None:
        try:
            base = _dt.date(fields["year"], 1, 1) + _dt.timedelta(days=fields["yday"] - 1)
        except (ValueError, OverflowError):
            raise TimeError(f"{err_prefix}: day-of-year out of range") from None
        fields["month"], fields["day"] = base.month, base.day
    month, day = fields["month"], fields["day"]
    if not 1 <= month <= 12:
        raise TimeError(f"{err_prefix}: month out of range")
    if hour > 23 or fields["minute"] > 59 or fields["second"] > 59:
        raise TimeError(f"{err_prefix}: {_bad_field(hour, fields['minute'])} out of range")
    try:
        naive = _dt.datetime(fields["year"], month, day, hour, fields["minute"], fields["second"])
    except ValueError:
        raise TimeError(f"{err_prefix}: day out of range") from None
    nsec = fields["nsec"]
    if fields["offset"] is not None:
        offset = fields["offset"]
        if offset == 0 and location is None:
            loc = UTC
        else:
            loc = GoLocation("", _dt.timezone(_dt.timedelta(seconds=offset)))
        aware = naive.replace(tzinfo=loc.tz)
        return GoTime.from_datetime(aware, loc, nsec)
    if fields["zone"] is not None:
        zone = fields["zone"]
        loc = UTC if zone in ("UTC", "GMT") else GoLocation(zone, _dt.UTC)
        if location is not None:
            loc = location
        aware = naive.replace(tzinfo=loc.tz)
        return GoTime.from_datetime(aware, loc, nsec)
    loc = location or UTC
    aware = naive.replace(tzinfo=loc.tz)
    return GoTime.from_datetime(aware, loc, nsec)
