"""``tem-rf <command>``: one entry point for every binary, beside ``python -m experiments.<command>``.

The binaries stay modules of ``data_prep`` and ``experiments`` (thin absl apps); this module
only maps a command name to its module, imports it (which defines its flags) and runs its
``main`` as ``python -m`` would, with the same start-up (`tem_rf.core.cli.run`). ``tem-rf`` alone,
``tem-rf help`` or ``tem-rf --help`` lists the commands with the first line of each one's
docstring.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command -> module, in the order of the workflow
COMMANDS = {
    "make-demo-data": "data_prep.make_demo_data",
    "make-tfrecords": "data_prep.make_tfrecords",
    "describe": "experiments.describe",
    "recommend": "experiments.recommend",
    "train": "experiments.train",
    "sweep": "experiments.sweep",
    "learning-curve": "experiments.learning_curve",
    "evaluate": "experiments.evaluate",
    "fourier-baseline": "experiments.fourier_baseline",
    "analyze": "experiments.analyze",
    "export": "experiments.export",
    "segment": "experiments.segment",
    "measure": "experiments.measure",
    "demo": "experiments.demo",
}


def _summary(module_name: str) -> str:
    """The first line of a binary's docstring, read from its source: importing it would define
    its flags, which several binaries share by name."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return ""
    with open(spec.origin, encoding="utf-8") as handle:
        doc = ast.get_docstring(ast.parse(handle.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    """The list of commands, one line each."""
    width = max(map(len, COMMANDS))
    lines = ["usage: tem-rf <command> [flags]   (tem-rf <command> --help for its flags)", "", "commands:"]
    lines += [f"  {name:<{width}}  {_summary(module)}" for name, module in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs ``tem-rf <command> [flags]``; a command with ``_`` for ``-`` works too."""
    from tem_rf.core import cli

    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("help", "-h", "--help", "-help"):
        print(usage())
        raise SystemExit(0)
    command = argv[1].replace("_", "-")
    if command not in COMMANDS:
        print(f"error: unknown command {argv[1]!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[command])
    # absl's --help shows the __main__ module's docstring and the flags of the module named by
    # argv[0]: the binary's own, as with python -m
    sys.modules["__main__"].__doc__ = module.__doc__
    sys.argv = [COMMANDS[command], *argv[2:]]
    cli.run(module.main)


__all__ = ["COMMANDS", "main", "usage"]
