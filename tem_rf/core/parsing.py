"""Parsing the comma-separated lists that binaries take as flags (``"2,8"``, ``"1-1-2,2-2-4"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def parse_list(
    text: str, what: str, convert: Callable[[str], T] = int, count: int | None = None
) -> tuple[T, ...]:
    """Parses ``"2,8"`` into ``(2, 8)``; raises ValueError naming the flag ``--what``.

    ``convert`` turns each item into a value (``int`` or ``float``); ``count`` demands exactly
    that many items.
    """
    kind = "integers" if convert is int else "numbers"
    try:
        values = tuple(convert(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated {kind}, got {text!r}") from None
    if not values:
        raise ValueError(f"--{what} is empty")
    if count is not None and len(values) != count:
        raise ValueError(f"--{what} must be {count} comma-separated {kind}, got {text!r}")
    return values


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """Parses ``"2,8"`` (or ``"2"``) into ``(2, 8)``; raises ValueError naming ``--what``."""
    return parse_list(text, what, int)


def parse_band(text: str | None, what: str) -> tuple[float, float] | None:
    """Parses ``"low,high"`` with ``0 < low < high`` (a frequency band); None stays None."""
    if text is None:
        return None
    values = parse_list(text, what, float)
    if len(values) != 2:
        raise ValueError(f"--{what} must be two values 'low,high', got {text!r}")
    low, high = values
    if not 0 < low < high:
        raise ValueError(f"--{what} must be 'low,high' with 0 < low < high, got {text!r}")
    return low, high


def parse_sequences(text: str, what: str) -> list[tuple[int, ...]]:
    """``"1-1-2,2-2-4"`` -> ``[(1, 1, 2), (2, 2, 4)]``: several integer sequences in one flag."""
    items = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            items.append(tuple(int(v) for v in part.split("-")))
        except ValueError:
            raise ValueError(
                f"--{what}: cannot read {part!r}: expected integers joined by '-', e.g. 1-1-2"
            ) from None
    return items


def int_or_list(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """A single value stays an int (broadcast by the builder); several stay a tuple."""
    return values[0] if len(values) == 1 else values


def parse_number_list(values: list[str] | None, what: str, kind: type = float) -> list | None:
    """A list flag's comma-separated values (absl's ``DEFINE_list``) as numbers of ``kind``; None
    when the flag is not given. A value that is not a number is a ValueError naming ``--what``."""
    try:
        return None if values is None else [kind(v) for v in values if v.strip()]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated numbers, got {','.join(values)!r}") from None
