"""Running the absl binaries: flags from a dataclass, deprecated flag names, quiet TensorFlow start-up."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from absl import app, flags
from absl import logging as absl_logging

from tem_rf.core.errors import TemRfError
from tem_rf.core.parsing import parse_int_list


# Flags defined by the helpers below belong to the binary that calls them, not to this module:
# help output lists them under the binary, and a test can drop one binary's flags by module.
flags.disclaim_key_flags()


class _IntTupleParser(flags.ArgumentParser):
    """Parses ``"2,8"`` into ``(2, 8)`` (a flag for a ``tuple[int, ...]`` field)."""

    def __init__(self, flag_name: str) -> None:
        self.flag_name = flag_name

    def parse(self, argument: str | Iterable[int]) -> tuple[int, ...]:
        if isinstance(argument, str):
            return parse_int_list(argument, self.flag_name)
        return tuple(int(value) for value in argument)  # the dataclass default

    def flag_type(self) -> str:
        return "int list"


class _IntTupleSerializer(flags.ArgumentSerializer):
    """``(2, 8)`` -> ``2,8``, as typed; a repeated flag's ``[(2, 2), (4, 4)]`` -> ``2,2; 4,4``."""

    def serialize(self, value: Any) -> str:
        if value and isinstance(value[0], (tuple, list)):
            return "; ".join(",".join(map(str, item)) for item in value)
        return ",".join(map(str, value))


def option(default: Any, help_text: str, **metadata: Any) -> Any:
    """A dataclass field of an options class: its default, the flag's help text, and metadata
    such as ``choices``, ``lower_bound`` or ``flag`` (see `define_flags_from_dataclass`)."""
    return dataclasses.field(default=default, metadata={"help": help_text, **metadata})


def define_flags_from_dataclass(
    config_class: type,
    field_names: Iterable[str] | None = None,
    flag_values: flags.FlagValues = flags.FLAGS,
) -> dict[str, flags.FlagHolder]:
    """Defines one flag per field of ``config_class`` (all, or ``field_names``); returns holders by field.

    Each flag takes the field's default (None for a field without one: the binary marks it
    required), its type (int, float, bool, str, ``tuple[int, ...]`` as ``"2,8"``, ``tuple[str,
    ...]`` as a comma-separated list; ``X | None`` as X, unset by default) and
    ``metadata["help"]``; ``metadata["flag"]`` renames the flag, ``metadata["choices"]`` makes it
    an enum and ``metadata["lower_bound"]`` bounds a number. So defaults and help texts live once,
    in the dataclass.
    """
    types = typing.get_type_hints(config_class)
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    holders = {}
    for name in field_names or fields:
        field = fields[name]
        flag_name = field.metadata.get("flag", name)
        help_text = field.metadata["help"]
        default = None if field.default is dataclasses.MISSING else field.default
        kind = _without_none(types[name])
        bound = {"lower_bound": field.metadata["lower_bound"]} if "lower_bound" in field.metadata else {}
        if "choices" in field.metadata:
            holders[name] = flags.DEFINE_enum(
                flag_name, default, list(field.metadata["choices"]), help_text, flag_values=flag_values
            )
        elif kind is bool:
            holders[name] = flags.DEFINE_boolean(flag_name, default, help_text, flag_values=flag_values)
        elif kind is int:
            holders[name] = flags.DEFINE_integer(flag_name, default, help_text, flag_values=flag_values, **bound)
        elif kind is float:
            holders[name] = flags.DEFINE_float(flag_name, default, help_text, flag_values=flag_values, **bound)
        elif kind == tuple[str, ...]:
            holders[name] = flags.DEFINE_list(
                flag_name, None if default is None else list(default), help_text, flag_values=flag_values)
        elif kind is str:
            holders[name] = flags.DEFINE_string(flag_name, default, help_text, flag_values=flag_values)
        elif kind == tuple[int, ...]:
            holders[name] = define_int_list(flag_name, default, help_text, flag_values=flag_values)
        else:
            raise TypeError(f"{config_class.__name__}.{name}: no flag type for {kind}")
    return holders


def _without_none(kind: Any) -> Any:
    """``X | None`` -> X; any other type as it is."""
    arguments = typing.get_args(kind)
    if type(None) in arguments and len(arguments) == 2:
        return next(argument for argument in arguments if argument is not type(None))
    return kind


def options_from_flags(options_class: type, holders: dict[str, flags.FlagHolder], **values: Any) -> Any:
    """An ``options_class`` instance from the flag holders `define_flags_from_dataclass` made
    (plus ``values`` for fields without a flag); list flags become tuples."""
    given = {name: tuple(h.value) if isinstance(h.value, list) else h.value for name, h in holders.items()}
    return options_class(**given, **values)


def define_int_list(
    name: str,
    default: Iterable[int] | None,
    help_text: str,
    multi: bool = False,
    flag_values: flags.FlagValues = flags.FLAGS,
) -> flags.FlagHolder:
    """A flag that takes ``"2,8"`` and holds ``(2, 8)``; ``multi``: repeatable, a list of those."""
    serializer = _IntTupleSerializer()
    if multi:
        return flags.DEFINE_multi(
            _IntTupleParser(name), serializer, name, default, help_text, flag_values=flag_values
        )
    return flags.DEFINE(
        _IntTupleParser(name), name, default, help_text, flag_values=flag_values, serializer=serializer
    )


# The release that removes the deprecated flag names and the old import locations kept for them
# (`define_deprecated_alias`; `tem_rf.particles.measure`'s and `tem_rf.data.dataset`'s re-exports).
SHIMS_REMOVED_IN = "0.3.0"


def define_deprecated_alias(
    old: str, new: str, convert: Callable[[Any], Any] | None = None, flag_values: flags.FlagValues = flags.FLAGS
) -> None:
    """Defines ``--old`` as a deprecated name of the already defined ``--new``, kept until tem_rf
    `SHIMS_REMOVED_IN` (its help and its warning say so).

    ``--old`` parses like ``--new`` (a plain string where ``--new`` takes several values); after
    parsing, its value, through ``convert`` if given, becomes ``--new``'s and a warning says
    ``--old is deprecated; use --new``. Giving both is a flag error. Call this before marking
    ``--new`` required: validators run in the order they were registered.
    """
    target = flag_values[new]
    parser = flags.ArgumentParser() if isinstance(target, flags.MultiFlag) else target.parser
    flags.DEFINE_flag(
        flags.Flag(parser, flags.ArgumentSerializer(), old, None,
                   f"Deprecated: use --{new} (--{old} goes in tem_rf {SHIMS_REMOVED_IN}).", boolean=target.boolean),
        flag_values,
    )

    # A validator, because absl runs validators after parsing and before main, whichever way the
    # flags were parsed (app.run or a test calling FLAGS(argv)).
    def copy_to_new(values: dict[str, Any]) -> bool:
        if values[old] is None:
            return True
        if flag_values[new].present:
            raise flags.ValidationError(f"--{old} is deprecated and replaced by --{new}: give only --{new}")
        absl_logging.warning("--%s is deprecated; use --%s (--%s goes in tem_rf %s)", old, new, old, SHIMS_REMOVED_IN)
        flag_values[new].value = convert(values[old]) if convert else values[old]
        return True

    flags.register_multi_flags_validator([old, new], copy_to_new, flag_values=flag_values)


def run(main: Callable[[list[str]], Any]) -> None:
    """`absl.app.run(main)` with TensorFlow's start-up lines and INFO chatter silenced (warnings
    still show; ``TEM_RF_TF_LOGS=1`` shows everything, `tem_rf.core.native_logs`) and refusals
    printed as one line (`one_line_errors`).

    TensorFlow reads TF_CPP_MIN_LOG_LEVEL when it is imported, which binaries do inside main.
    """
    from tem_rf.core.native_logs import filter_native_stderr

    if filter_native_stderr():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    app.run(_quiet_library_info(one_line_errors(main)))


# What a binary reports as one ``error: <path>: <problem>`` line and exit status 1 instead of a
# traceback: tem_rf's refusals, and the ValueError / OSError of a check or a file that failed.
REFUSALS = (TemRfError, ValueError, OSError)


INTERRUPTED = (
    "error: interrupted; what was finished is kept and nothing half-written is left: run the same "
    "command again to go on (training resumes from its last finished epoch)"
)


def one_line_errors(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Wraps a binary's `main`: a `REFUSALS` error ends it with ``error: <message>`` on stderr and
    exit status 1, Ctrl-C (SIGINT) with `INTERRUPTED` and exit status 130 (the shell's 128 +
    SIGINT), not a traceback; the one place every binary's refusals are printed. Every writer
    writes under temporary names and cleans them up as the interrupt unwinds."""
    import functools

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        try:
            return main(argv)
        except REFUSALS as error:
            raise SystemExit(f"error: {error}") from None
        except KeyboardInterrupt:
            print(INTERRUPTED, file=sys.stderr)
            raise SystemExit(130) from None

    return wrapped


def _quiet_library_info(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Wraps `main` so TensorFlow's INFO lines sent through absl.logging are dropped.

    TensorFlow's checkpoint and SavedModel code logs through `absl.logging` ("Sharding callback
    duration", "Writing fingerprint", signature renames) and resets absl's verbosity while it
    saves, so neither the `tensorflow` logger nor a logger level reaches them: a filter on absl's
    handler drops the `absl` logger's records below WARNING. An explicit --verbosity/-v or
    --logger_levels keeps everything absl would show.
    """
    import functools

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        if not (flags.FLAGS["verbosity"].present or flags.FLAGS["logger_levels"].present):
            absl_logging.get_absl_handler().addFilter(drop_absl_info)
        return main(argv)

    return wrapped


def drop_absl_info(record: logging.LogRecord) -> bool:
    """Logging filter: False for records of the `absl` logger below WARNING."""
    return not (record.name == "absl" and record.levelno < logging.WARNING)
