"""Long videos in windows (vlcli.planning.windows): the plans cover the video with no gap, each window's
times map to the right source seconds (read back from a burned-in clock), and the merge keeps a
span in an overlap once."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from helpers_clock import make_clock_clip, read_clock

from vlcli.errors import UsageError
from vlcli.media.frames import frames_at
from vlcli.media.probe import probe
from vlcli.models.families import QWEN2_5_VL
from vlcli.planning.plan import SamplingOptions, VideoFacts, VideoPlan, plan_video
from vlcli.planning.windows import (
    Window,
    check_window,
    default_overlap,
    merge_spans,
    plan_windows,
    shown_range,
    sparse_note,
    window_bounds,
)
from vlcli.times.parse import TimeSpan, map_times

FPS = 10


@pytest.fixture(scope="session")
def clock_clip(media_dir: Path) -> str:
    """95 s at 10 fps (950 frames), each frame showing its own number (helpers_clock)."""
    return make_clock_clip(media_dir / "clock_95s.mp4", seconds=95, fps=FPS)


@pytest.mark.parametrize(
    ("start", "end", "window", "overlap"),
    [(0, 95, 30, 4), (0, 95, 30, 0), (12.5, 80, 20, 5), (0, 3600, 600, 4), (0, 61, 60, 4)],
)
def test_window_bounds_cover_the_clip(
    start: float, end: float, window: float, overlap: float
) -> None:
    ws = window_bounds(start, end, window, overlap)
    assert ws[0].start_s == start and ws[-1].end_s == end
    assert [w.index for w in ws] == list(range(len(ws)))
    lengths = [w.end_s - w.start_s for w in ws]
    assert max(lengths) <= window + 1e-6
    assert max(lengths) - min(lengths) < 0.01  # equal windows: no sliver at the end
    for a, b in zip(ws, ws[1:], strict=False):
        assert b.start_s <= a.end_s  # no gap
        assert a.end_s - b.start_s == pytest.approx(overlap, abs=2e-3)
    assert len(ws) == math.ceil((end - start - overlap) / (window - overlap) - 1e-9)
    assert window_bounds(0, 25, 30, 4) == [Window(0, 0, 25)]  # fits: one window


def test_window_options_are_checked() -> None:
    assert check_window(None, None) is None
    assert check_window(60, None) == (60, 4.0)
    assert check_window(8, None) == (8, 2.0)  # a few seconds, at most a quarter
    for window, overlap, message in [
        (None, 2, "--overlap needs --window"),
        (0, None, "--window"),
        (10, 10, "--overlap"),
        (10, -1, "--overlap"),
    ]:
        with pytest.raises(UsageError, match=message):
            check_window(window, overlap)


def test_window_plans_cover_the_video_and_are_start_end_plans(clock_clip: str) -> None:
    facts = probe(clock_clip).video_facts()
    options = SamplingOptions(fps=2.0)
    planned = plan_windows(facts, options, QWEN2_5_VL, 30, 4)
    assert len(planned) == 4
    # each window is exactly the plan --start/--end would make (so budget and ask agree)
    for k, (w, plan) in enumerate(planned):
        start = None if k == 0 else w.start_s
        end = None if k == len(planned) - 1 else w.end_s
        assert plan == plan_video(
            facts, dataclasses.replace(options, start=start, end=end), QWEN2_5_VL
        )
    # frames: every frame of the video is in some window's range, neighbours overlap
    assert planned[0][1].start_frame == 0 and planned[-1][1].end_frame == facts.num_frames - 1
    for (_, a), (_, b) in zip(planned, planned[1:], strict=False):
        assert b.start_frame <= a.end_frame + 1
    # seconds: what the windows show covers the whole video with no gap
    covered = sorted(shown_range(p) for _, p in planned)
    assert covered[0][0] == 0 and covered[-1][1] == pytest.approx(facts.num_frames / FPS)
    for (_, hi), (lo, _) in zip(covered, covered[1:], strict=False):
        assert lo <= hi


def test_each_window_maps_its_times_to_the_clock_it_showed(clock_clip: str) -> None:
    """A second the model states in window k goes through window k's own time axis; the frame
    at the mapped source second shows that second on its burned-in clock."""
    facts = probe(clock_clip).video_facts()
    planned = plan_windows(facts, SamplingOptions(fps=2.0), QWEN2_5_VL, 30, 4)
    for _, plan in planned:
        axis = plan.time_axis()
        stated = [0.0, 3.0, 10.5, plan.position_seconds(plan.temporal_positions[-1])]
        spans = map_times(
            [TimeSpan(m, m) for m in stated],
            clip_start_s=axis.clip_start_s,
            clip_end_s=axis.clip_end_s,
            to_source=axis.source_seconds,
        )
        seconds = [s.source_start_s for s in spans]
        assert all(s is not None for s in seconds)
        clocks = [read_clock(im) / FPS for im in frames_at(clock_clip, seconds)]  # type: ignore[arg-type]
        for m, source, clock in zip(stated, seconds, clocks, strict=True):
            # seconds from the window's start (up to one temporal patch: positions are floored)
            assert source == pytest.approx(plan.clip_start_s + m, abs=plan.second_per_grid_t)
            assert clock == pytest.approx(source, abs=1 / FPS + 1e-6)  # the frame shows it
    # and the frames each window's patches showed are where its axis says they are
    for _, plan in planned:
        shown = frames_at(clock_clip, list(plan.patch_times_s))
        assert [read_clock(im) for im in shown] == list(plan.frame_indices[::2])


def span(start: float, end: float, text: str) -> TimeSpan:
    return TimeSpan(start, end, text, source_start_s=start, source_end_s=end)


def test_merge_keeps_an_overlap_span_once(clock_clip: str) -> None:
    facts = probe(clock_clip).video_facts()
    (w0, p0), (w1, p1), (w2, p2) = plan_windows(facts, SamplingOptions(fps=1.0), QWEN2_5_VL, 35, 5)
    lo, hi = shown_range(p1)[0], shown_range(p0)[1]  # the overlap of windows 0 and 1
    assert hi - lo == pytest.approx(5, abs=0.2)
    late_in_0 = span(lo + 3.6, lo + 4.4, "door opens (seen late in window 0)")
    early_in_1 = span(lo + 3.2, lo + 4.1, "door opens (seen early in window 1)")
    only_0 = span(lo + 0.5, lo + 0.5, "a light flickers")  # in the overlap, window 1 missed it
    merged = merge_spans(
        [
            (w0, p0, [span(2, 5, "a man enters"), late_in_0, only_0]),
            (w1, p1, [early_in_1, span(40, 45, "he sits")]),
            (w2, p2, [span(80, 82, "he leaves")]),
        ]
    )
    texts = [s.text for _, s in merged]
    # the door, stated by both windows, once: window 1 holds its middle more centrally
    assert texts.count("door opens (seen early in window 1)") == 1
    assert "door opens (seen late in window 0)" not in texts
    assert "a light flickers" in texts  # stated by one window only: kept
    assert texts == ["a man enters", "a light flickers", "door opens (seen early in window 1)",
                     "he sits", "he leaves"]  # fmt: skip
    assert [w for w, _ in merged] == [0, 0, 1, 1, 2]
    starts = [s.display_start_s for _, s in merged]
    assert starts == sorted(starts)


def test_sparse_sampling_names_window(media_dir: Path) -> None:
    """Over 384 s at the default 2 fps the 768-frame cap thins the sampling: below 0.5 fps the
    plan says so and names --window; asking for a low fps yourself is not warned about."""
    from helpers_media import make_clip

    long = make_clip(media_dir / "long_1700s.mp4", size=(32, 32), fps=1, seconds=1700,
                     source="color=c=gray")  # fmt: skip
    facts = probe(long).video_facts()
    plan = plan_video(facts, SamplingOptions(), QWEN2_5_VL)
    assert isinstance(plan, VideoPlan) and plan.frames == 768 and plan.sample_fps < 0.5
    note = sparse_note(plan, SamplingOptions())
    assert note is not None and "--window" in note and "2.2 s" in note
    assert sparse_note(plan, SamplingOptions(fps=0.25)) is None
    assert (
        sparse_note(
            plan_video(facts, SamplingOptions(end=300), QWEN2_5_VL), SamplingOptions(end=300)
        )
        is None
    )


@pytest.mark.parametrize(
    ("seconds", "options"),
    [
        (21, SamplingOptions(fps=0.5)),  # 10 frames (pairs) over 21 s: 0.48 fps, the user's rate
        (20, SamplingOptions(max_frames=7)),  # the user's own cap: 6 frames over 20 s
        (2000, SamplingOptions(max_frames=700)),  # the user's cap, below the 768 one
        (2000, SamplingOptions(nframes=100)),
        (1000, SamplingOptions(fps=0.25)),  # 250 frames: no cap reached, the user's rate
    ],
)
def test_sparse_note_is_silent_when_the_user_set_the_rate(
    seconds: int, options: SamplingOptions
) -> None:
    """The warning is about the 768-frame cap: a low rate the user's own options give is theirs."""
    facts = VideoFacts(width=64, height=48, num_frames=seconds * 10, average_fps=10.0)
    plan = plan_video(facts, options, QWEN2_5_VL)
    assert plan.sample_fps < 0.5
    assert sparse_note(plan, options) is None


@pytest.mark.parametrize(
    ("seconds", "source_fps", "fps"),
    [(1700, 10, None), (7200, 10, 0.5), (7200, 10, 0.3), (3000, 30, 30)],
)
def test_sparse_note_names_a_window_that_raises_the_rate(
    seconds: int, source_fps: int, fps: float | None
) -> None:
    """When the cap lowers the rate below 0.5 fps (even an asked 0.3 fps), the --window named is
    shorter than the clip and its windows, planned as ask plans them, keep the asked rate."""
    options = SamplingOptions(fps=fps)
    facts = VideoFacts(
        width=64, height=48, num_frames=seconds * source_fps, average_fps=float(source_fps)
    )
    plan = plan_video(facts, options, QWEN2_5_VL)
    note = sparse_note(plan, options)
    assert note is not None, plan.sample_fps
    window = float(note.split("--window ")[1].split()[0])
    assert window < seconds
    planned = plan_windows(facts, options, QWEN2_5_VL, window, default_overlap(window))
    wanted = fps if fps is not None else 2.0
    assert all(p.sample_fps > plan.sample_fps for _, p in planned)
    assert all(p.sample_fps >= wanted * 0.9 for _, p in planned), [p.sample_fps for _, p in planned]


def test_windows_subtitles_have_no_phantom_cue_and_end_with_the_video() -> None:
    # a 30-minute clip in windows of 300 s: each window's answer states a time past its own
    # window (350 s: outside, clamped to its boundary) and one 1 s before its end. The outside
    # ones were each a 2 s cue at a boundary, and the last bell a cue to 00:30:01.
    from vlcli.outputs.subtitles import to_srt
    from vlcli.planning.plan import VideoFacts
    from vlcli.planning.windows import plan_windows
    from vlcli.run.prompt import map_answer_times

    facts = VideoFacts(640, 360, 1800 * 30, 30.0)
    windows = plan_windows(facts, SamplingOptions(), QWEN2_5_VL, 300.0, 4.0)
    parts = []
    for w, plan in windows:
        length = shown_range(plan)[1] - plan.clip_start_s
        answer = f"At 350 seconds nothing. A bell at {length - 1:.3f} seconds."
        spans = map_answer_times(answer, [plan], [plan.time_axis()])
        assert spans[0].outside and not spans[1].outside
        parts.append((w, plan, spans))
    end = shown_range(windows[-1][1])[1]
    assert end == pytest.approx(1800.0)
    srt = to_srt([span for _, span in merge_spans(parts)], end_s=end)
    assert "nothing" not in srt
    assert srt.count("A bell") == 7  # one a window; the overlaps hold none
    assert srt.splitlines()[-2].endswith(" --> 00:30:00,000")  # cut at the video's end
