"""Running the absl binaries: quiet TensorFlow start-up, one error line for bad input."""

from __future__ import annotations

from tem_rf.core.parsing import int_or_list, parse_int_list  # noqa: F401  (binaries use them via cli)


def run(main) -> None:
    """`absl.app.run(main)` with TensorFlow's own INFO chatter silenced (warnings still show).

    TensorFlow reads TF_CPP_MIN_LOG_LEVEL when it is imported, which binaries do inside main.
    """
    import logging
    import os

    from absl import app

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    app.run(_quiet_library_info(main))


def _quiet_library_info(main):
    """Wraps `main` so TensorFlow's INFO lines sent through absl.logging are dropped.

    TensorFlow's checkpoint and SavedModel code logs through `absl.logging` ("Sharding callback
    duration", "Writing fingerprint", signature renames) and resets absl's verbosity while it
    saves, so neither the `tensorflow` logger nor a logger level reaches them: a filter on absl's
    handler drops the `absl` logger's records below WARNING. An explicit --verbosity/-v or
    --logger_levels keeps everything absl would show.
    """
    import functools

    from absl import flags
    from absl import logging as absl_logging

    @functools.wraps(main)
    def wrapped(argv):
        if not (flags.FLAGS["verbosity"].present or flags.FLAGS["logger_levels"].present):
            absl_logging.get_absl_handler().addFilter(drop_absl_info)
        return main(argv)

    return wrapped


def drop_absl_info(record) -> bool:
    """Logging filter: False for records of the `absl` logger below WARNING."""
    import logging

    return not (record.name == "absl" and record.levelno < logging.WARNING)
