"""Networks shipped in the package, named ``pretrained:NAME`` wherever a model is taken.

Each one is a run directory under ``tem_rf/pretrained/NAME/`` (``best.keras``, ``config.json``,
``metrics.json``, ``instance_rule.json`` for a boundary-target network, ``history.csv``) with a
``MODEL_CARD.md`` saying what it was trained on, how to retrain it and how well it does, so
``segment --model=pretrained:emps``, ``measure``, ``export`` and ``train --init_from`` work without a
download or a labelling project.
"""

from __future__ import annotations

import os
from pathlib import Path

from tem_rf.core.errors import TemRfError

PREFIX = "pretrained:"
DIRECTORY = Path(__file__).resolve().parents[1] / "pretrained"
MODEL_CARD_FILE = "MODEL_CARD.md"


class UnknownPretrainedError(TemRfError, ValueError):
    """A ``pretrained:NAME`` that names no network shipped in the package."""


def is_pretrained(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a shipped network (``pretrained:NAME``) rather than a path."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def available() -> list[str]:
    """The names of the shipped networks, sorted."""
    if not DIRECTORY.is_dir():
        return []
    return sorted(p.name for p in DIRECTORY.iterdir() if (p / "config.json").is_file() and (p / "best.keras").is_file())


def pretrained_dir(name: str) -> Path:
    """The run directory of the shipped network ``name``; refused naming the ones there are."""
    names = available()  # only these: a name is never a path into or out of the folder
    if name not in names:
        shipped = ", ".join(PREFIX + n for n in names) or "none"
        raise UnknownPretrainedError(f"{PREFIX}{name}: no such network in tem_rf (shipped: {shipped})")
    return DIRECTORY / name


def resolve_model(spec: str | os.PathLike) -> Path:
    """The path behind a model argument: the run directory of ``pretrained:NAME``, else ``spec``."""
    if is_pretrained(spec):
        return pretrained_dir(str(spec)[len(PREFIX):])
    return Path(spec)


def model_source(spec: str | os.PathLike, model_file: str | os.PathLike) -> str:
    """How a loaded model is named in outputs: ``pretrained:NAME`` as given, else its file."""
    return str(spec) if is_pretrained(spec) else str(model_file)


def model_card(name: str) -> Path:
    """The model card (Markdown) of the shipped network ``name``."""
    return pretrained_dir(name) / MODEL_CARD_FILE
