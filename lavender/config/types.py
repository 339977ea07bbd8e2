"""Value types of config keys: how a JSON value is checked, how a command-line string is read, and how
the allowed values are described (for --help and docs/config.md)."""
import json
import math

from ..errors import ConfigError

__all__ = ["Bool", "Int", "Float", "Str", "Choice", "ListOf", "Dict", "Optional", "AnyOf", "FrameColumn"]


class ValueType:
    """Base: `check` a JSON value (returns it normalised), `parse` a command-line string."""

    name = "value"

    def check(self, value, key, where):
        return value

    def parse(self, raw, key):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw

    def allowed(self):
        """The allowed values in words ("" when any value of the type is)."""
        return ""


def _cannot(key, raw, what):
    return ConfigError(f"--{key}: cannot read {raw!r} as {what}")


class _OfType(ValueType):
    """A value of one JSON type (`pytype`), refused as `what` otherwise."""
    pytype, what = object, "a value"

    def check(self, value, key, where):
        if not isinstance(value, self.pytype):
            raise ConfigError(f"{where}: {key!r} must be {self.what}, got {value!r}")
        return value


class Bool(_OfType):
    name, pytype, what = "bool", bool, "true/false"
    TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

    def parse(self, raw, key):
        low = raw.strip().lower()
        if low in self.TRUE:
            return True
        if low in self.FALSE:
            return False
        raise _cannot(key, raw, "bool (true/false)")


class _Number(ValueType):
    def __init__(self, min=None, max=None, min_open=False, max_open=False, choices=None):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.choices = tuple(choices) if choices else None

    def _range(self, value, key):
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"{key} must be {self.allowed()}, got {value!r}")
            return value
        low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        high = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if low or high:
            raise ConfigError(f"{key} must be {self.allowed()}, got {value!r}")
        return value

    def allowed(self):
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max}")
        return " and ".join(parts)

    def check(self, value, key, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key!r} must be a number, got {value!r}")
        return self._range(self._coerce(value, key, where), key)

    def parse(self, raw, key):
        try:
            return self.kind(raw)
        except ValueError:
            raise _cannot(key, raw, self.name) from None


class Int(_Number):
    """A whole number (a JSON 3.0 is 3; 2.5 is refused)."""
    name, kind = "int", int

    def _coerce(self, value, key, where):
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{where}: {key!r} must be a whole number, got {value!r}")
            value = int(value)
        return value


class Float(_Number):
    """A finite number (NaN and infinity are refused)."""
    name, kind = "float", float

    def _coerce(self, value, key, where):
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return value


class Str(_OfType):
    name, pytype, what = "str", str, "a string"

    def parse(self, raw, key):
        return raw


class Choice(Str):
    """One string of `choices`; `what` explains them in the refusal."""

    def __init__(self, *choices, what=None):
        self.choices, self.what = tuple(choices), what

    def check(self, value, key, where):
        if value not in self.choices:
            hint = f" ({self.what})" if self.what else ""
            raise ConfigError(f"{key} must be one of {list(self.choices)}{hint}, got {value!r}")
        return value

    def allowed(self):
        return "one of " + ", ".join(map(str, self.choices))


class ListOf(ValueType):
    """A JSON list of `item` values (a bare string is one item, as the tgif configs give img_transform);
    on the command line a JSON list or comma-separated items. `nonempty`: at least one item."""

    def __init__(self, item, nonempty=False):
        self.item, self.nonempty = item, nonempty
        self.name = f"list of {item.name}"

    def check(self, value, key, where):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (self.nonempty and not value):
            raise ConfigError(f"{key} must be a {'non-empty ' if self.nonempty else ''}list of {self.item.name} "
                              f"({self.item.allowed() or 'any'}), got {value!r}")
        try:
            return [self.item.check(v, key, where) for v in value]
        except ConfigError:
            raise ConfigError(f"{key} must be a list of {self.item.name} ({self.item.allowed() or 'any'}), "
                              f"got {value!r}") from None

    def parse(self, raw, key):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = [x for x in raw.split(",")]
        return value if isinstance(value, list) else [value]

    def allowed(self):
        return f"items {self.item.allowed()}" if self.item.allowed() else ""


class Dict(_OfType):
    """A JSON object (string keys)."""
    name, pytype, what = "dict", dict, "a JSON object {...}"

    def parse(self, raw, key):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise _cannot(key, raw, f"a JSON object ({e})") from None


class Optional(ValueType):
    """`inner` or null (on the command line: null or none)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = f"{inner.name} or null"

    def check(self, value, key, where):
        return None if value is None else self.inner.check(value, key, where)

    def parse(self, raw, key):
        return None if raw.strip().lower() in ("null", "none") else self.inner.parse(raw, key)

    def allowed(self):
        return self.inner.allowed()


class AnyOf(ValueType):
    """The first of `types` that accepts the value; `what` is the refusal."""

    def __init__(self, *types, what):
        self.types, self.what = types, what
        self.name = " or ".join(t.name for t in types)

    def check(self, value, key, where):
        for t in self.types:
            try:
                return t.check(value, key, where)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {self.what}, got {value!r}")

    def parse(self, raw, key):
        if raw.strip()[:1] in "[{":
            try:
                return json.loads(raw)
            except json.JSONDecodeError as e:
                raise _cannot(key, raw, f"JSON ({e})") from None
        for t in self.types:
            try:
                value = t.parse(raw, key)
                return t.check(value, key, "command line")
            except ConfigError:
                continue
        return raw

    def allowed(self):
        return self.what


class FrameColumn(ValueType):
    """Where frames start in a TSV row: "auto", "swinbert" or a column number >= 1 (docs/data.md)."""
    name = "str or int"
    WORDS = ("auto", "swinbert")

    def check(self, value, key, where):
        if value in self.WORDS:
            return value
        col = int(value) if isinstance(value, str) and value.strip().isdigit() else value
        if isinstance(col, bool) or not isinstance(col, int) or col < 1:
            raise ConfigError(f"frame_column must be 'auto', 'swinbert' or a column number >= 1 (column 0 is the "
                              f"key), got {value!r}")
        return col

    def parse(self, raw, key):
        return raw

    def allowed(self):
        return "auto, swinbert or a column >= 1"
