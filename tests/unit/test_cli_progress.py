"""The progress meters: what a terminal and a log get from the same events."""

from qrvey_iac.cli_progress import Count, LiveMeter, PlainMeter, counter_line, wants_live


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorder():
    out: list[str] = []
    return out, out.append


def test_plain_lines_only_every_few_seconds_and_never_a_carriage_return():
    out, write = recorder()
    clock = Clock()
    meter = PlainMeter(write, clock, every=5.0)
    meter.started(1000, "objects refreshed")
    for _ in range(12):                      # 80 a second: a line at 5 s and at 10 s, none at 100%
        clock.now += 1
        meter.advanced(80)
    meter.line("[  12.0s] Refreshed 1000 objects")
    meter.finished()
    assert out == ["  400 of 1000 objects refreshed (40%, 80/s)\n",
                   "  800 of 1000 objects refreshed (80%, 80/s)\n",
                   "[  12.0s] Refreshed 1000 objects\n"]
    assert not any("\r" in text or "\x1b" in text for text in out)


def test_plain_says_nothing_for_a_short_operation():
    out, write = recorder()
    clock = Clock()
    meter = PlainMeter(write, clock)
    meter.started(10, "objects refreshed")
    clock.now += 1
    meter.advanced(10)
    meter.finished()
    assert out == []


def test_live_redraws_in_place_with_count_rate_and_time_left():
    out, write = recorder()
    clock = Clock()
    meter = LiveMeter(write, clock, every=0.1, width=lambda: 200)
    meter.started(1000, "objects refreshed")
    clock.now += 0.5
    meter.advanced(100)                         # no rate yet: one answer in half a second is no rate
    clock.now += 0.5
    meter.advanced(150)
    clock.now += 0.0625
    meter.advanced(10)                          # too soon: not drawn
    clock.now += 0.0625
    meter.advanced(40)
    assert out[0] == "\robjects refreshed [------------------------]    0/1000  0%"
    assert out[1] == "\robjects refreshed [##----------------------]  100/1000  10%"
    assert out[2] == "\robjects refreshed [######------------------]  250/1000  25%  250/s  3s left"
    assert out[3].startswith("\robjects refreshed [#######-----------------]  300/1000  30%  267/s  3s left")
    assert len(out) == 4


def test_live_message_lines_blank_the_counter_first_and_redraw_it_after():
    out, write = recorder()
    clock = Clock()
    meter = LiveMeter(write, clock, width=lambda: 200)
    meter.started(2, "operations")
    bar = out[-1][1:]
    meter.line("[   1.0s] dataset.a: created after 0.3s")
    assert out[1] == "\r" + " " * len(bar) + "\r"
    assert out[2] == "[   1.0s] dataset.a: created after 0.3s\n"
    assert out[3].startswith("\roperations [")
    meter.advanced(2)                            # the last one is always drawn
    assert "2/2  100%" in out[-1]
    meter.finished()
    assert out[-1].startswith("\r ") and out[-1].endswith("\r") and out[-1].strip() == ""
    meter.line("after")                           # no counter left to blank or redraw
    assert out[-1] == "after\n"
    meter.advanced()                              # a late completion: nothing drawn
    assert out[-1] == "after\n"


def test_live_a_shorter_line_covers_the_longer_one_and_fits_the_terminal():
    out, write = recorder()
    clock = Clock()
    meter = LiveMeter(write, clock, every=0.0, width=lambda: 40)
    meter.started(10, "objects refreshed")
    assert all(len(text) <= 40 for text in out)     # the \r plus 39 columns: it never wraps
    clock.now += 1
    meter.advanced(5)
    assert len(out[-1]) == len(out[-2])             # padded over what was there


def test_the_counter_line():
    count = Count(1000, "objects refreshed", 0.0)
    count.done = 412
    assert counter_line(count, 2.0) == ("objects refreshed [#########---------------]  412/1000  41%  206/s  3s left")
    count.done = 1000
    assert counter_line(count, 4.0).endswith("1000/1000  100%  250/s")


def test_live_only_on_a_terminal_that_can_take_it():
    assert wants_live(True, {"TERM": "xterm-256color"}, debug=False)
    assert not wants_live(False, {"TERM": "xterm-256color"}, debug=False)        # a pipe, a CI log
    assert not wants_live(True, {"TERM": "dumb"}, debug=False)
    assert not wants_live(True, {"TERM": "xterm", "NO_COLOR": "1"}, debug=False)
    assert not wants_live(True, {"TERM": "xterm"}, debug=True)                   # its log lines would break it
    assert wants_live(True, {"TERM": "xterm", "NO_COLOR": ""}, debug=False)       # NO_COLOR set but empty: unset
