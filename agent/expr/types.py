"""Static types ("natures") the checker reasons with, modelled on expr's ``checker/nature``.

expr type-checks an expression against the *types* of the environment's top-level
values before running it: that is why ``retries + 1`` (``retries`` is a string in Argo)
fails to compile while ``lastRetry.exitCode > 1`` (a member of an untyped map) only fails
when run. A :class:`Nature` is a kind plus the Go type name used in messages; arrays may
know their element nature, functions their signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gotime import GoDuration, GoLocation, GoMonth, GoTime, GoWeekday
from .values import AnyKeyMap, GoFunc

__all__ = [
    "ANY",
    "ARRAY",
    "BOOL",
    "DURATION",
    "FLOAT",
    "INT",
    "LOCATION",
    "MAP",
    "NIL",
    "STRING",
    "STRINGS",
    "TIME",
    "UNKNOWN",
    "Nature",
    "Signature",
    "array_of",
    "assignable",
    "is_comparable",
    "nature_of",
    "param_nature",
]


@dataclass(frozen=True, slots=True)
class Signature:
    """A function type: parameter natures, result nature, variadic last parameter."""

    params: tuple[Nature, ...]
    result: Nature
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class Nature:
    kind: str  # unknown nil bool int float string array map func time duration location
    name: str  # Go type name for messages
    elem: Nature | None = field(default=None, compare=False)
    sig: Signature | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name

    @property
    def unknown(self) -> bool:
        return self.kind == "unknown"

    @property
    def nil(self) -> bool:
        return self.kind == "nil"

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def is_integer(self) -> bool:
        return self.kind in ("int", "duration", "month", "weekday")

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_number(self) -> bool:
        return self.is_integer or self.is_float

    @property
    def is_string(self) -> bool:
        return self.kind == "string"

    @property
    def is_array(self) -> bool:
        return self.kind == "array"

    @property
    def is_map(self) -> bool:
        return self.kind == "map"

    @property
    def is_time(self) -> bool:
        return self.kind == "time"

    @property
    def is_duration(self) -> bool:
        return self.kind == "duration"

    @property
    def is_func(self) -> bool:
        return self.kind == "func"

    def element(self) -> Nature:
        return self.elem if self.elem is not None else UNKNOWN


UNKNOWN = Nature("unknown", "unknown")
ANY = Nature("unknown", "interface {}")  # a Go interface{} parameter
NIL = Nature("nil", "nil")
BOOL = Nature("bool", "bool")
INT = Nature("int", "int")
FLOAT = Nature("float", "float64")
STRING = Nature("string", "string")
ARRAY = Nature("array", "[]interface {}")
STRINGS = Nature("array", "[]string", elem=STRING)
MAP = Nature("map", "map[string]interface {}")
ANY_MAP = Nature("map", "map[interface {}]interface {}")
TIME = Nature("time", "time.Time")
DURATION = Nature("duration", "time.Duration")
MONTH = Nature("month", "time.Month")
WEEKDAY = Nature("weekday", "time.Weekday")
LOCATION = Nature("location", "*time.Location")
BYTES = Nature("array", "[]uint8", elem=INT)


def array_of(elem: Nature) -> Nature:
    return Nature("array", "[]interface {}", elem=elem)


def func_nature(sig: Signature, name: str = "") -> Nature:
    params = [p.name if p is not UNKNOWN else "interface {}" for p in sig.params]
    if sig.variadic and params:
        params[-1] = "..." + params[-1]
    result = sig.result.name if sig.result is not UNKNOWN else "interface {}"
    return Nature("func", name or f"func({', '.join(params)}) {result}", sig=sig)


_PARAMS: dict[str, Nature] = {
    "any": ANY,
    "string": STRING,
    "int": INT,
    "float64": FLOAT,
    "bool": BOOL,
    "[]any": ARRAY,
    "[]string": STRINGS,
    "map": MAP,
    "time": TIME,
    "duration": DURATION,
    "location": LOCATION,
}


def param_nature(param: str) -> Nature:
    return _PARAMS.get(param, ANY)


def nature_of(value: Any) -> Nature:
    """The nature expr gives an environment value (by its dynamic Go type)."""
    if value is None:
        return NIL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, GoDuration):
        return DURATION
    if isinstance(value, GoMonth):
        return MONTH
    if isinstance(value, GoWeekday):
        return WEEKDAY
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STRING
    if isinstance(value, (bytes, bytearray)):
        return BYTES
    if isinstance(value, (list, tuple)):
        return ARRAY
    if isinstance(value, AnyKeyMap):
        return ANY_MAP
    if isinstance(value, dict):
        return MAP
    if isinstance(value, GoTime):
        return TIME
    if isinstance(value, GoLocation):
        return LOCATION
    if isinstance(value, GoFunc):
        sig = Signature(
            tuple(param_nature(p) for p in value.params),
            param_nature(value.result) if value.result != "any" else UNKNOWN,
            value.variadic,
        )
        return func_nature(sig, value.type_string())
    if callable(value):
        return func_nature(Signature((ANY,), UNKNOWN, variadic=True))
    return UNKNOWN


def assignable(value: Nature, target: Nature) -> bool:
    """Go assignability, as far as these natures can express it."""
    if target.kind == "unknown":  # interface{}
        return True
    if value.kind == "unknown":
        return False
    return value.name == target.name


def is_comparable(left: Nature, right: Nature) -> bool:
    if left.unknown or right.unknown or left.nil or right.nil:
        return True
    if left.is_number and right.is_number:
        return True
    if (left.is_duration and right.is_duration) or (left.is_time and right.is_time):
        return True
    if left.is_array and right.is_array:
        return True
    return assignable(left, right)
