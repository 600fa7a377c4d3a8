"""tem_rf.core.cli: flags from dataclasses, deprecated aliases and the absl INFO filter used by every binary."""

import dataclasses
import logging

import pytest
from absl import flags

from tem_rf.core import cli


def test_drop_absl_info_keeps_warnings_and_our_own_info():
    def record(name, level):
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    assert not cli.drop_absl_info(record("absl", logging.INFO))
    assert cli.drop_absl_info(record("absl", logging.WARNING))
    assert cli.drop_absl_info(record("tem_rf.train.loop", logging.INFO))


@dataclasses.dataclass
class _Settings:
    data_dir: str = dataclasses.field(metadata={"help": "Data."})
    pools: tuple[int, ...] = dataclasses.field(default=(2,), metadata={"help": "Pools."})
    rate: float = dataclasses.field(default=0.5, metadata={"help": "Rate."})
    fast: bool = dataclasses.field(default=False, metadata={"help": "Fast.", "flag": "xla"})
    mode: str = dataclasses.field(default="a", metadata={"help": "Mode.", "choices": ("a", "b")})


@pytest.fixture
def fresh_flags():
    """A flag registry of the test's own, so the binaries' global flags never clash with it."""
    return flags.FlagValues()


def test_flags_from_dataclass(fresh_flags):
    holders = cli.define_flags_from_dataclass(_Settings, flag_values=fresh_flags)
    assert fresh_flags["pools"].help == "Pools." and fresh_flags["data_dir"].default is None
    fresh_flags(["prog", "--data_dir=D", "--pools=2,8", "--xla", "--mode=b"])
    assert _Settings(**{name: h.value for name, h in holders.items()}) == _Settings("D", (2, 8), 0.5, True, "b")
    fresh_flags.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError, match="--pools must be comma-separated integers"):
        fresh_flags(["prog", "--pools=2,x"])


@dataclasses.dataclass(frozen=True)
class _Options:
    size: float | None = dataclasses.field(default=None, metadata={"help": "Size."})
    tiles: int = dataclasses.field(default=4, metadata={"help": "Tiles.", "lower_bound": 1})
    names: tuple[str, ...] = dataclasses.field(default=("a",), metadata={"help": "Names."})


def test_optional_bounded_and_list_options(fresh_flags):
    holders = cli.define_flags_from_dataclass(_Options, flag_values=fresh_flags)
    fresh_flags(["prog"])
    assert cli.options_from_flags(_Options, holders) == _Options()
    fresh_flags.unparse_flags()
    fresh_flags(["prog", "--size=2.5", "--tiles=3", "--names=x,y"])
    assert cli.options_from_flags(_Options, holders) == _Options(2.5, 3, ("x", "y"))
    fresh_flags.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError, match="tiles"):
        fresh_flags(["prog", "--tiles=0"])


def test_segment_and_measure_flags_are_their_options_fields():
    from tem_rf.serve.options import SegmentOptions
    from tem_rf.study.instances import MeasureOptions

    for options_class in (SegmentOptions, MeasureOptions):
        registry = flags.FlagValues()
        cli.define_flags_from_dataclass(options_class, flag_values=registry)
        registry(["prog", "--tile_size=0", "--info_bar=keep", "--exclude_regions=-60:,:"])
        options = options_class(**{f.name: registry[f.name].value for f in dataclasses.fields(options_class)})
        library = options.library_options()
        assert library["tile_size"] is None  # 0: one pass
        assert (library["info_bar"], library["exclude_regions"]) == ("keep", "-60:,:")


def test_deprecated_alias_copies_warns_and_refuses_both(fresh_flags, caplog):
    flags.DEFINE_boolean("progress", True, "Progress bars.", flag_values=fresh_flags)
    cli.define_deprecated_alias(
        "quiet", "progress", convert=lambda quiet: not quiet, flag_values=fresh_flags
    )
    with caplog.at_level(logging.WARNING):
        fresh_flags(["prog", "--quiet"])
    assert fresh_flags.progress is False and "--quiet is deprecated; use --progress" in caplog.text
    assert f"(--quiet goes in tem_rf {cli.SHIMS_REMOVED_IN})" in caplog.text  # every shim names its end
    assert fresh_flags["quiet"].help == f"Deprecated: use --progress (--quiet goes in tem_rf {cli.SHIMS_REMOVED_IN})."
    fresh_flags.unparse_flags()
    fresh_flags(["prog", "--noprogress"])
    assert fresh_flags.progress is False
    fresh_flags.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError, match="give only --progress"):
        fresh_flags(["prog", "--quiet", "--progress"])


def test_every_refusal_is_one_error_line_and_a_bug_keeps_its_traceback():
    from tem_rf.core.errors import InputError, TemRfError
    from tem_rf.core.files import LockHeldError
    from tem_rf.serve.export import ExportError
    from tem_rf.train.config import TrainingError
    from tem_rf.train.rundir import ModelLoadError

    for error_class in (ExportError, TrainingError, ModelLoadError, LockHeldError, InputError):
        assert issubclass(error_class, TemRfError)

    def refusing(argv):
        raise InputError("/data/a.tif", "is not a micrograph")

    with pytest.raises(SystemExit) as exited:
        cli.one_line_errors(refusing)(["prog"])
    assert exited.value.code == "error: /data/a.tif: is not a micrograph"

    def disk_full(argv):
        raise OSError(28, "No space left on device", "/out/x.tif")

    with pytest.raises(SystemExit, match=r"error: \[Errno 28\] No space left on device: '/out/x.tif'"):
        cli.one_line_errors(disk_full)(["prog"])

    def buggy(argv):
        return {}["missing"]

    with pytest.raises(KeyError):
        cli.one_line_errors(buggy)(["prog"])


def test_ctrl_c_ends_a_binary_with_one_line_and_status_130(capsys):
    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as ended:
        cli.one_line_errors(main)(["prog"])
    assert ended.value.code == 130
    assert capsys.readouterr().err == cli.INTERRUPTED + "\n"
