"""How the API server reads a ``coordination.k8s.io/v1`` Lease: typed decoding, then validation.

A Lease is a built-in type, so the server decodes every body into the Go struct
``LeaseSpec`` before anything else happens, and what a client reads back is that struct
encoded again. Clients notice three consequences, reproduced here:

* a field of the wrong JSON type is a 400 ``BadRequest`` ("cannot be handled as a
  Lease"), as is a ``MicroTime`` (``acquireTime``, ``renewTime``) that is not RFC 3339
  with exactly six fractional digits: ``metav1.MicroTime.UnmarshalJSON`` parses with
  ``RFC3339Micro`` (``2006-01-02T15:04:05.000000Z07:00``), and Go's parser demands as
  many digits as the layout has;
* a parsed ``MicroTime`` is written back in UTC with six digits (``MarshalJSON``), so a
  time sent in that form is stored exactly as given and an offset comes back as ``Z``;
  ``null`` and unknown fields disappear (the struct has no place for them; the default
  ``fieldValidation=Warn`` only warns);
* after decoding, ``ValidateLeaseSpec`` answers 422 ``Invalid`` for a
  ``leaseDurationSeconds`` that is not positive or a negative ``leaseTransitions``.

Decoding is separate from validation because the server decodes before it checks a
``resourceVersion`` precondition (400 wins over 409) and validates after (409 wins over
422).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from . import errors

__all__ = ["decode_lease", "validate_lease"]

_GROUP, _KIND = "coordination.k8s.io", "Lease"
_INT32 = (-(2**31), 2**31 - 1)
_STRING_FIELDS = ("holderIdentity", "strategy", "preferredHolder")
_INT32_FIELDS = ("leaseDurationSeconds", "leaseTransitions")
_MICRO_TIME_FIELDS = ("acquireTime", "renewTime")
_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
# RFC3339Micro as Go parses it: exactly six fractional digits, then Z or +hh:mm / -hh:mm.
_HEAD = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_FRACTION = re.compile(r"^\.(\d{6})")
_ZONE = re.compile(r"^(Z|[+-]\d{2}:\d{2})$")


def _cannot_handle(why: str) -> errors.ApiError:
    # handlers.transformDecodeError's wording for a body of a known kind.
    return errors.bad_request(f'Lease in version "v1" cannot be handled as a Lease: {why}')


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, field: str, go_type: str) -> errors.ApiError:
    # encoding/json's UnmarshalTypeError text.
    return _cannot_handle(
        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"LeaseSpec.spec.{field} of type {go_type}"
    )


def _micro_time(value: str) -> str:
    """Parse like ``MicroTime.UnmarshalJSON`` and re-encode like ``MarshalJSON``."""

    def failure(rest: str, element: str) -> errors.ApiError:
        # time.ParseError: the unparsed rest of the value and the layout element it missed.
        return _cannot_handle(
            f'parsing time "{value}" as "{_LAYOUT}": cannot parse "{rest}" as "{element}"'
        )

    head = _HEAD.match(value)
    if head is None:
        raise failure(value, "2006")
    rest = value[head.end() :]
    fraction = _FRACTION.match(rest)
    if fraction is None:
        raise failure(rest, ".000000")
    rest = rest[fraction.end() :]
    zone_match = _ZONE.match(rest)
    if zone_match is None:
        raise failure(rest, "Z07:00")
    year, month, day, hour, minute, second = head.groups()
    micro, zone = fraction.group(1), zone_match.group(1)
    tz: timezone = UTC
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), int(micro), tz
        )
    except ValueError as err:
        raise _cannot_handle(f'parsing time "{value}": {err}') from None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_lease(obj: dict[str, Any]) -> None:
    """Replace ``obj["spec"]`` by what decoding into ``LeaseSpec`` and encoding it gives."""
    if "spec" not in obj:
        return
    spec = obj["spec"]
    if spec is None:
        del obj["spec"]
        return
    if not isinstance(spec, dict):
        raise _cannot_handle(
            f"json: cannot unmarshal {_json_type(spec)} into Go struct field "
            "Lease.spec of type v1.LeaseSpec"
        )
    decoded: dict[str, Any] = {}
    for field in _STRING_FIELDS:
        value = spec.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _type_error(value, field, "string")
        decoded[field] = value
    for field in _INT32_FIELDS:
        value = spec.get(field)
        if value is None:
            continue
        # Go's decoder parses an int32 from the number's text: "15.0" and "1e1" fail too.
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not _INT32[0] <= value <= _INT32[1]
        ):
            raise _type_error(value, field, "int32")
        decoded[field] = value
    for field in _MICRO_TIME_FIELDS:
        value = spec.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _type_error(value, field, "v1.MicroTime")
        decoded[field] = _micro_time(value)
    # LeaseSpec's JSON field order, as the server writes it.
    order = (
        "holderIdentity",
        "leaseDurationSeconds",
        "acquireTime",
        "renewTime",
        "leaseTransitions",
        "strategy",
        "preferredHolder",
    )
    obj["spec"] = {key: decoded[key] for key in order if key in decoded}


def validate_lease(name: str, obj: dict[str, Any]) -> None:
    """``ValidateLeaseSpec``: 422 naming each bad field."""
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str, str]] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.leaseDurationSeconds",
                f"Invalid value: {duration}: must be greater than 0",
            )
        )
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.leaseTransitions",
                f"Invalid value: {transitions}: must be greater than or equal to 0",
            )
        )
    if spec.get("preferredHolder") and not spec.get("strategy"):
        causes.append(
            (
                "FieldValueForbidden",
                "spec.preferredHolder",
                "Forbidden: may only be specified if `strategy` is defined",
            )
        )
    if causes:
        raise errors.invalid(_GROUP, _KIND, name, causes)
