"""Progress of long preparation steps: a bar with time left on a terminal, a line per quarter in a log."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.continual.worker import _every
from bench_support.plugin.progress import BAR_WIDTH, LINE_EVERY_S, Bar, _duration, progress_text


def test_the_text_has_a_bar_the_count_and_the_time_left_from_the_rate_so_far():
    text = progress_text("generating x", 320, 640, 4.0, "images")
    assert text == "generating x: [" + "#" * 12 + "." * 12 + "] 320/640 images, 4 s left"
    assert progress_text("pretraining", 10, 100, 30.0).endswith("10/100, 4 min 30 s left")
    assert progress_text("g", 640, 640, 9.2, "images", bar=False) == "g: 640/640 images, done in 9 s"
    assert progress_text("g", 0, 640, 0.0, bar=False) == "g: 0/640"  # no rate yet, no guess


@given(st.integers(0, 10_000), st.integers(1, 10_000), st.floats(0, 1e5))
def test_the_bar_never_overflows_and_the_time_left_is_never_negative(done, total, elapsed):
    text = progress_text("l", done, total, elapsed)
    bar = text[text.index("[") + 1 : text.index("]")]
    assert len(bar) == BAR_WIDTH and bar == "#" * bar.count("#") + "." * bar.count(".")
    assert "-" not in text


def test_without_a_terminal_a_plain_line_is_written_at_each_quarter():
    lines = []
    clock = iter(range(1000))
    bar = Bar("generating x", lines.append, unit="images", clock=lambda: next(clock) / 10)
    for done in range(1, 101):
        bar(done, 100)
    assert [line.split(":")[1].split(",")[0].strip() for line in lines] == [
        "25/100 images", "50/100 images", "75/100 images", "100/100 images"
    ]  # fmt: skip
    assert "[" not in lines[0] and lines[-1].endswith("done in 10 s")


@given(step_s=st.floats(0.01, 200), steps=st.integers(2, 60))
def test_without_a_terminal_a_slow_step_still_writes_a_line_at_least_every_interval(step_s, steps):
    lines, stamps = [], []
    now = [0.0]
    bar = Bar("pretraining", lambda text: (lines.append(text), stamps.append(now[0])), clock=lambda: now[0])
    for done in range(1, steps + 1):
        now[0] += step_s
        bar(done, steps)
    gaps = [b - a for a, b in zip([0.0] + stamps, stamps)]
    # A line can only come when the step reports: never more than one step after the interval.
    assert all(gap <= LINE_EVERY_S + step_s + 1e-9 for gap in gaps), gaps
    assert lines[-1].endswith(f"done in {_duration(now[0])}")  # the clock as summed: step_s * steps can round apart


def test_on_a_terminal_the_line_is_redrawn_at_most_every_fifth_of_a_second_and_ended_once():
    drawn = []
    now = [0.0]
    bar = Bar("p", lambda text: pytest.fail("no plain lines on a terminal"), lambda t, final: drawn.append(final),
              clock=lambda: now[0])  # fmt: skip
    for done in range(1, 51):
        now[0] += 0.05
        bar(done, 50)
    assert drawn[-1] is True and drawn.count(True) == 1
    assert 10 <= len(drawn) <= 14  # 2.5 s at one redraw per 0.2 s, plus the final one


def test_the_worker_sends_progress_at_most_every_interval_and_always_the_last_step():
    sent = []
    send = _every(3600.0, lambda done, total: sent.append(done))
    for step in range(1, 101):
        send(step, 100)
    assert sent == [1, 100]
