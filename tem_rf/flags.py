"""Parsing helpers shared by the absl binaries (kept here so binaries stay thin)."""

from __future__ import annotations


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """Parses ``"2,8"`` (or ``"2"``) into ``(2, 8)``; raises ValueError naming ``what``."""
    try:
        values = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{what} is empty")
    return values


def int_or_list(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """A single value stays an int (broadcast by the builder); several stay a tuple."""
    return values[0] if len(values) == 1 else values


def run(main) -> None:
    """`absl.app.run(main)` with TensorFlow's own INFO chatter silenced (warnings still show).

    TensorFlow reads TF_CPP_MIN_LOG_LEVEL when it is imported, which binaries do inside main.
    """
    import logging
    import os

    from absl import app

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    app.run(main)
