"""core.progress: a bar on a terminal, one plain line per finished loop in a log."""

import io
import re

from tem_rf.core.progress import LineProgress, is_terminal, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_loop_and_no_carriage_return():
    log = io.StringIO()
    for epoch in range(2):
        steps = progress_bar(range(50), desc=f"epoch {epoch + 1}/2", unit="step", file=log)
        assert isinstance(steps, LineProgress) and len(steps) == 50
        seen = []
        for step in steps:
            seen.append(step)
            steps.set_postfix(loss=f"{1 / (step + 1):.4f}", refresh=False)
            assert log.getvalue().count("\n") == epoch  # nothing while the loop runs
        assert seen == list(range(50))
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"epoch 1/2: 100% 50/50 step \[00:00, \S+ step/s, loss=0\.0200\]", lines[0]), lines[0]
    assert lines[1].startswith("epoch 2/2: 100% 50/50 step [")


def test_a_loop_left_early_reports_how_far_it_got_on_close():
    log = io.StringIO()
    with progress_bar(iter(range(10)), desc="writing", total=10, unit="image", file=log) as bar:
        for i in bar:
            if i == 2:
                break
    assert log.getvalue().startswith("writing: 20% 2/10 image [")  # two done when it broke off (as tqdm counts)
    assert log.getvalue().count("\n") == 1


def test_manual_counting_and_unknown_total():
    log = io.StringIO()
    bar = progress_bar(desc="fourier filtering", unit="patch", file=log)
    bar.update(3)
    bar.update(4)
    bar.close()
    bar.close()  # once
    assert re.fullmatch(r"fourier filtering: 7 patch \[00:00, \S+ patch/s\]\n", log.getvalue())


def test_a_terminal_gets_a_tqdm_bar():
    terminal = FakeTerminal()
    assert is_terminal(terminal) and not is_terminal(io.StringIO())
    for _ in progress_bar(range(5), desc="checking", unit="image", leave=True, file=terminal):
        pass
    text = terminal.getvalue()
    assert "\r" in text and "checking:" in text and "5/5" in text and "|" in text  # tqdm's bar


def test_disabled_writes_nothing():
    log, terminal = io.StringIO(), FakeTerminal()
    items = [1, 2, 3]
    assert progress_bar(items, desc="x", enabled=False, file=log) is items
    progress_bar(desc="x", enabled=False, file=terminal).update(2)
    assert log.getvalue() == "" and terminal.getvalue() == ""
