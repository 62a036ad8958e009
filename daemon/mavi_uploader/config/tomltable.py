"""Checked access to TOML tables: value checks, and errors that name the file, table and key."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any


class ConfigError(Exception):
    """Invalid configuration; str() names the file, the key and the fix. CLI exits 2."""


def show(value: object) -> str:
    """A value roughly as it looks in TOML, shortened for messages."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


Check = Callable[[object], bool]  # is this raw TOML value acceptable?


def of(*types: type) -> Check:
    return lambda v: isinstance(v, types)


def int_in(lo: int, hi: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def seconds(v: object) -> bool:  # ints are fine for float keys; bool is not a number
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def positive(v: object) -> bool:
    return seconds(v) and v != 0


def str_list(v: object) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)


class Table:
    """Checked access to one TOML table; errors name the file, the table and the key."""

    def __init__(self, data: Mapping[str, Any], where: str, label: str = "") -> None:
        self.data, self.where, self.label = data, where, label

    def get(self, key: str, default: object, ok: Check, want: str) -> Any:
        value = self.data.get(key, default)
        if not ok(value):
            raise self.bad(key, want)
        return value

    def num(self, key: str, default: float, want: str, ok: Check = seconds) -> float:
        return float(self.get(key, default, ok, want))

    def check_keys(
        self,
        valid: tuple[str, ...],
        elsewhere: tuple[str, ...],
        never: Mapping[str, str],
        hidden: tuple[str, ...] = (),
    ) -> None:
        """Unknown keys are errors, with a hint: a near miss, the table the key belongs in, or
        for a key people guess but that must not exist (`never`: key -> what to do instead).
        `hidden` keys are accepted but never offered in a hint (settings for tests)."""
        for key in (k for k in self.data if k not in valid and k not in hidden):
            if key in never:
                raise ConfigError(f"{self.where}{key} is not a config key: {never[key]}")
            close = difflib.get_close_matches(key, valid, n=1)
            if key in elsewhere and self.label:
                fix = "it is a top-level key: move it above the first [[watch]] line"
            elif key in elsewhere:
                fix = f"it belongs in a [[watch]] table:\n[[watch]]\n{key} = ..."
            else:
                fix = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(valid)}"
            table = self.label.strip() or "the top level"
            raise ConfigError(f"{self.where}unknown key {key} in {table}: {fix}")

    def bad(self, key: str, want: str) -> ConfigError:
        shown = show(self.data.get(key))
        return ConfigError(f"{self.where}{self.label}{key} = {shown} is not valid: expected {want}")
