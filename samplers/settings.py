"""Sampler settings as dataclass fields: each says how it is checked, how it enters the sample id, how it is shown.

A sampler is a dataclass whose fields are its settings::

    @dataclass(kw_only=True, eq=False)
    class Mine(Sampler):
        name = "mine"
        strength: float = setting(1.0, check=non_negative, label="s={:g}")

:meth:`Sampler.params` (hashed into every sample id), :meth:`Sampler.display_name` and the constructor's checks
all derive from the fields, so a new setting is part of the sample id unless it says why not: two settings that
give different outputs can never share an id.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal

Check = Callable[[str, Any], Any]
"""``check(name, value) -> value``: the value normalised (``3`` -> ``3.0``), or a ValueError naming the setting."""

Identity = Literal["always", "if_changed", "never"]


def setting(default: Any, *, check: Check | None = None, identity: Identity = "always", requires: str | None = None,
            encode: Callable[[Any], Any] | None = None, label: str | Callable[[Any], str | None] | None = None,
            shown: Literal["if_changed", "always"] = "if_changed") -> Any:
    """A sampler setting (a dataclass field with a default).

    Args:
        default: the value when the config does not give one.
        check: validates and normalises the configured value when the sampler is built.
        identity: how the setting enters :meth:`Sampler.params`, the sample-id input: ``"always"``; ``"if_changed"``,
            only when it differs from ``default`` (a setting added after results existed: their ids stay valid);
            ``"never"``, for a setting that changes no output (a debug probe, a display label) or enters the id in
            another way (``steps``).
        requires: a boolean setting without which this one has no effect: it stays out of the id while that is off.
        encode: the plain-JSON form of the value for the id (e.g. ``inf`` -> ``"inf"``).
        label: how it shows in :meth:`Sampler.display_name`: a format string (``"γ2={:g}"``), or
            ``label(sampler) -> str | None`` for a label that combines settings (None: not shown).
        shown: when a format-string label is shown: while the value differs from ``default``, or ``"always"``.
    """
    meta = {"check": check, "identity": identity, "requires": requires, "encode": encode, "label": label,
            "shown": shown}
    return dataclasses.field(default=default, metadata=meta)


def normalise(obj: Any) -> None:
    """Run every setting's check on ``obj``, in field order, storing the normalised values."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is not None:
            setattr(obj, f.name, check(f.name, getattr(obj, f.name)))


def identity_params(obj: Any) -> dict[str, Any]:
    """The settings that define the output, in field order, as plain JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("identity", "always"), getattr(obj, f.name)
        if rule == "never" or (rule == "if_changed" and value == f.default):
            continue
        requires = f.metadata.get("requires")
        if requires is not None and not getattr(obj, requires):
            continue
        encode = f.metadata.get("encode")
        out[f.name] = encode(value) if encode is not None else value
    return out


def label_parts(obj: Any) -> list[str]:
    """The labels of the settings worth showing, in field order."""
    parts = []
    for f in dataclasses.fields(obj):
        label, value = f.metadata.get("label"), getattr(obj, f.name)
        if label is None:
            continue
        if callable(label):
            text = label(obj)
        else:
            text = label.format(value) if f.metadata["shown"] == "always" or value != f.default else None
        if text:
            parts.append(text)
    return parts


# ---------------------------------------------------------------------------------------------- checks
def non_negative(name: str, value: Any) -> float:
    """A finite number >= 0 (a guidance scale), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    value = float(value)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """An integer in [lo, hi] (hi inclusive, None = unbounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def integer(lo: int, hi: int | None = None) -> Check:
    """An integer in [lo, hi]."""
    return lambda name, value: check_int(name, value, lo, hi)


def optional(check: Check) -> Check:
    """None, or a value that passes ``check``."""
    return lambda name, value: None if value is None else check(name, value)


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    return check


def flag(name: str, value: Any) -> bool:
    return bool(value)
