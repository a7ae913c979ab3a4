"""Boxes and points mapped to source pixels, worked out by hand per family.

Each expected pixel below is computed in the comment beside it from the sizes the model was
shown. Qwen2.5-VL states pixels of its resized input, Qwen2-VL and Qwen3-VL thousandths: a
source pixel is ``coordinate * source side / extent`` per axis, edges rounded to the nearest
pixel edge (halves up), points to the pixel they fall in. The resized sizes are worked out too,
and the plan is checked to agree with them first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import invoke
from helpers_forced import force_answer
from PIL import Image

from vlcli.models.families import QWEN2_5_VL, QWEN2_VL, QWEN3_VL, Family
from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_image, plan_video
from vlcli.space.place import PlacedShape, place_shapes
from vlcli.space.read import read_shapes

OPTIONS = SamplingOptions()


def placed(answer: str, plan: Any, axes: tuple[Any, ...] = ()) -> list[PlacedShape]:
    return place_shapes(read_shapes(answer), [plan], axes)


def pixels(answer: str, plan: Any) -> list[tuple[int, ...] | None]:
    return [p.pixels for p in placed(answer, plan)]


def box(x1: float, y1: float, x2: float, y2: float, label: str = "it") -> str:
    return json.dumps([{"bbox_2d": [x1, y1, x2, y2], "label": label}])


# ---------------------------------------------------------------- the forms read


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # cut off by --max-new-tokens: the whole boxes are kept, the one cut is none
        ('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7', [("box", "a", None)]),
        # extra keys, single quotes (a Python repr), a label written before the box
        ("[{'label': 'car', 'score': 0.9, 'bbox': [1, 2, 3, 4]}]", [("box", "car", None)]),
        # a video's times: on the object, or on an object around it; a clock string
        (
            '[{"time": 3, "objects": [{"bbox_2d": [1,2,3,4], "label": "a"}]},'
            ' {"timestamp": "00:12.5", "point_2d": [5, 6], "label": "b"}]',
            [("box", "a", 3.0), ("point", "b", 12.5)],
        ),
        # a per-frame listing: each shape under the time it is filed at (not "objects")
        (
            '{"0.5s": [{"bbox_2d": [1, 2, 3, 4], "label": "a"}], "00:02": {"objects": '
            '[{"bbox_2d": [5, 6, 7, 8], "label": "b"}]}}',
            [("box", "a", 0.5), ("box", "b", 2.0)],
        ),
        # Qwen2-VL with its special tokens skipped by the decoder
        ("The dog(120,340),(560,780).", [("box", "The dog", None)]),
        # prose: a box beside words of position; a point beside words of a point
        ("The bounding box is [10, 20, 30, 40].", [("box", "", None)]),
        ("Click at the position (120, 45).", [("point", "", None)]),
        # four numbers with no word of position, a pair in passing, a box_2d (y first): none
        ("The scores were [1, 2, 3, 4] in the four rounds.", []),
        ("It happened in (2019, 2020) twice.", []),
        ('{"box_2d": [10, 20, 30, 40]}', []),
        # times in prose are no places: a unit of time after them, words of time before them,
        # "at this point" (a moment)
        ("The events occurred between (0.5, 2.0), (3.0, 4.5) seconds.", []),
        ("The key point is between (3, 5) seconds.", []),
        ("Located at timestamps [1.0, 2.0, 3.0, 4.0].", []),
        ("At this point (12.5, 14.0) the player scores.", []),
        # a time in a form not read (an exponent) is no time, not its first digit
        ('{"time": 2e1, "bbox_2d": [1, 2, 3, 4]}', [("box", "", None)]),
    ],
)
def test_the_forms_models_write(answer: str, expected: list[tuple[str, str, Any]]) -> None:
    assert [(s.kind, s.label, s.time_s) for s in read_shapes(answer)] == expected


def test_bare_brackets_are_boxes_when_boxes_were_asked_for() -> None:
    assert read_shapes("[12, 30, 200, 310]") == []
    [found] = read_shapes("[12, 30, 200, 310]", boxes_asked=True)
    assert found.coords == (12.0, 30.0, 200.0, 310.0)


HUGE = "9" * 400  # past a float's range: float() makes it infinite

# Odd answers a model may write: each is read and placed without an error, into a record that
# is valid JSON (no NaN nor Infinity), and a number past a float's range is no coordinate.
ODD_ANSWERS = [
    f'[{{"bbox_2d": [{HUGE}, 2, 3, 4], "label": "a"}}]',
    f'[{{"point_2d": [1, {HUGE}], "label": "a"}}]',
    f"The bounding box is [{HUGE}, 1, 2, 3].",
    f"<|box_start|>({HUGE},2),(3,4)<|box_end|>",
    f"The dog(1,2),(3,{HUGE}).",
    f"Click at the position ({HUGE}, 45).",
    '[{"bbox_2d": [NaN, 1, 2, 3]}, {"bbox_2d": [Infinity, 1, 2, 3]}, {"bbox_2d": [1e3, 2, 3, 4]}]',
    '[{"bbox_2d": [1, 2, 3, 4]}}}}]]]',
    "{{{{ [[[[ (((( }}}} ]]]] ))))",
    '[{"bbox_2d": [[1, 2], [3, 4], [5, 6]]}, {"point_2d": [[1, 2], [3, 4]]}]',
    '[{"bbox_2d": ["1", "2", "3", "4"]}, {"bbox_2d": []}, {"bbox_2d": [',
    '[{"bbox_2d": [-100, -200, -3, -4], "label": "\\u0000\\n"}]',
    '[{"bbox_2d": [1, 2, 3, 4], "label": "\\ud800 猫 🐱"}]',
]


@pytest.mark.parametrize("answer", ODD_ANSWERS)
def test_odd_answers_are_read_without_error(answer: str) -> None:
    plan = plan_image(641, 359, OPTIONS, QWEN2_5_VL)
    shapes = place_shapes(read_shapes(answer, boxes_asked=True), [plan])
    json.dumps([s.to_dict() for s in shapes], allow_nan=False)
    assert all(math.isfinite(v) for s in shapes for v in s.model)


def test_a_deep_answer_cut_off_gives_each_shape_its_nearest_objects_keys() -> None:
    """A model repeating itself into objects nested 300 deep, cut off: every box is read with
    the time and label of the object it is in. Each object's keys are read once: when they
    were read again for every shape inside, 150 deep took 50 s (100 deep 8.6 s) and this
    would not have ended in minutes; 0.5 s now (measured by hand, this machine)."""
    answer = "".join(
        f'{{"time": {k}, "bbox_2d": [1, 2, 3, 4], "label": "l{k}", "next": ' for k in range(300)
    )
    shapes = read_shapes(answer)
    assert [(s.time_s, s.label) for s in shapes] == [(float(k), f"l{k}") for k in range(300)]


# ---------------------------------------------------------------- Qwen2.5-VL: resized pixels


def test_qwen2_5_vl_photo_4000x3000() -> None:
    # smart_resize rounds each side to 28 on its own: 4000/28 = 142.86 -> 143*28 = 4004,
    # 3000/28 = 107.14 -> 107*28 = 2996 (12 Mpx, under the 12.8 Mpx limit).
    plan = plan_image(4000, 3000, OPTIONS, QWEN2_5_VL)
    assert (plan.resized_width, plan.resized_height) == (4004, 2996)
    # x: 1001 * 4000/4004 = 1000, 2002 * 4000/4004 = 2000; y: 749 * 3000/2996 = 750,
    # 1498 * 3000/2996 = 1500. (One factor 4000/4004 for y would give 748 and 1497.)
    assert pixels(box(1001, 749, 2002, 1498), plan) == [(1000, 750, 2000, 1500)]


def test_qwen2_5_vl_odd_641x359() -> None:
    # 641/28 = 22.9 -> 23*28 = 644; 359/28 = 12.8 -> 13*28 = 364.
    plan = plan_image(641, 359, OPTIONS, QWEN2_5_VL)
    assert (plan.resized_width, plan.resized_height) == (644, 364)
    # x: 100 * 641/644 = 99.53 -> 100, 500 * 641/644 = 497.67 -> 498;
    # y: 100 * 359/364 = 98.63 -> 99, 300 * 359/364 = 295.88 -> 296.
    assert pixels(box(100, 100, 500, 300), plan) == [(100, 99, 498, 296)]
    # a point: 322 * 641/644 = 320.5 -> pixel 320; 182 * 359/364 = 179.5 -> pixel 179
    point = placed(json.dumps({"point_2d": [322, 182], "label": "p"}), plan)
    assert [(p.kind, p.pixels, p.flags) for p in point] == [("point", (320, 179), ())]


def test_qwen2_5_vl_one_pixel_and_very_wide() -> None:
    # 1x1 is enlarged to the 4-token minimum: 56x56. Its whole extent is the one pixel.
    one = plan_image(1, 1, OPTIONS, QWEN2_5_VL)
    assert (one.resized_width, one.resized_height) == (56, 56)
    assert pixels(box(0, 0, 56, 56), one) == [(0, 0, 1, 1)]
    # 10/56 = 0.18 -> 0 and 20/56 = 0.36 -> 0: no area left in the source: degenerate
    assert [p.flags for p in placed(box(10, 10, 20, 20), one)] == [("degenerate",)]
    # 3000x20: 3000/28 = 107.1 -> 2996, 20/28 = 0.71 -> 1*28 = 28.
    wide = plan_image(3000, 20, OPTIONS, QWEN2_5_VL)
    assert (wide.resized_width, wide.resized_height) == (2996, 28)
    # x2: 1498 * 3000/2996 = 1500; y: 7 * 20/28 = 5, 21 * 20/28 = 15
    assert pixels(box(0, 7, 1498, 21), wide) == [(0, 5, 1500, 15)]


def test_qwen2_5_vl_rotated_phone_frame() -> None:
    # A phone video coded 1920x1080 with a 90-degree display matrix is shown (and planned)
    # 1080x1920; 300 frames at 30 fps, 2 fps sampled: 20 frames, resized to 560x1008.
    plan = plan_video(VideoFacts(1080, 1920, 300, 30.0), OPTIONS, QWEN2_5_VL)
    assert (plan.resized_width, plan.resized_height) == (560, 1008)
    # x: 280 * 1080/560 = 540, 560 -> 1080; y: 504 * 1920/1008 = 960, 1008 -> 1920.
    # The time: Qwen2.5-VL's 1.0 s is its temporal patch 1 (second_per_grid_t 1.0), which
    # starts on sampled frame 2, source frame 31: 31/30 = 1.0333 s.
    answer = json.dumps([{"time": 1.0, "bbox_2d": [280, 504, 560, 1008], "label": "phone"}])
    [shape] = placed(answer, plan, (plan.time_axis(),))
    assert shape.pixels == (540, 960, 1080, 1920) and shape.flags == ()
    assert shape.frame_s == pytest.approx(31 / 30)


# ---------------------------------------------------------------- Qwen2-VL, Qwen3-VL: 0..1000


@pytest.mark.parametrize("family", [QWEN2_VL, QWEN3_VL], ids=lambda f: f.name)
def test_relative_families_on_every_size(family: Family) -> None:
    # Thousandths of the source's sides, whatever the resized size (it differs per family).
    photo = plan_image(4000, 3000, OPTIONS, family)
    # 250/1000 * 4000 = 1000, 500 -> 2000; 250/1000 * 3000 = 750, 500 -> 1500
    assert pixels(box(250, 250, 500, 500), photo) == [(1000, 750, 2000, 1500)]
    odd = plan_image(641, 359, OPTIONS, family)
    # x: 64.1 -> 64, 320.5 -> 321 (halves up); y: 35.9 -> 36, 107.7 -> 108
    assert pixels(box(100, 100, 500, 300), odd) == [(64, 36, 321, 108)]
    one = plan_image(1, 1, OPTIONS, family)
    assert pixels(box(0, 0, 1000, 1000), one) == [(0, 0, 1, 1)]
    wide = plan_image(3000, 20, OPTIONS, family)
    # x2: 0.5 * 3000 = 1500; y: 0.25 * 20 = 5, 0.75 * 20 = 15
    assert pixels(box(0, 250, 500, 750), wide) == [(0, 5, 1500, 15)]


@pytest.mark.parametrize(
    ("family", "frame_s"),
    # Qwen3-VL is shown source timestamps: 1.0 s is 1.0 s, on sampled frame 1 (16/30 s, the
    # last shown at or before 1.0). Qwen2-VL counts temporal patches of 1.0 s: patch 1, which
    # starts on source frame 31 (31/30 s).
    [(QWEN2_VL, 31 / 30), (QWEN3_VL, 16 / 30)],
    ids=["qwen2_vl", "qwen3_vl"],
)
def test_relative_families_on_a_rotated_phone_frame(family: Family, frame_s: float) -> None:
    plan = plan_video(VideoFacts(1080, 1920, 300, 30.0), OPTIONS, family)
    answer = json.dumps([{"time": 1.0, "bbox_2d": [500, 500, 1000, 1000], "label": "phone"}])
    [shape] = placed(answer, plan, (plan.time_axis(),))
    # 0.5 * 1080 = 540, 1080; 0.5 * 1920 = 960, 1920: the displayed frame's pixels
    assert shape.pixels == (540, 960, 1080, 1920)
    assert shape.frame_s == pytest.approx(frame_s)


# ---------------------------------------------------------------- what the model got wrong


def test_swapped_outside_and_unplaced_are_said_not_dropped() -> None:
    odd = plan_image(641, 359, OPTIONS, QWEN2_5_VL)  # resized 644x364
    [swapped] = placed(box(500, 300, 100, 100), odd)
    assert swapped.pixels == (100, 99, 498, 296) and swapped.flags == ("swapped",)
    # x2 700 > 644 and y2 400 > 364: clipped to the source's 641 and 359
    [outside] = placed(box(600, 300, 700, 400), odd)
    assert outside.pixels == (597, 296, 641, 359) and outside.flags == ("outside",)
    video = plan_video(VideoFacts(1080, 1920, 300, 30.0), OPTIONS, QWEN3_VL)
    axes = (video.time_axis(),)
    [untimed] = placed(box(0, 0, 500, 500), video, axes)
    assert untimed.flags == ("unplaced",) and untimed.frame_s is None
    assert untimed.pixels == (0, 0, 540, 960)
    late = json.dumps({"time": 60, "bbox_2d": [0, 0, 500, 500]})  # the clip ends at 10 s
    assert [p.flags for p in placed(late, video, axes)] == [("time-outside",)]
    unvouched = json.dumps({"time": 1, "bbox_2d": [0, 0, 500, 500]})
    assert [p.flags for p in placed(unvouched, video, (None,))] == [("time-unmapped",)]
    # an image has no frame to put a time on: a stated one is not kept
    timed = json.dumps({"time": 3, "bbox_2d": [0, 0, 10, 10]})
    assert [(p.time_s, p.frame_s, p.flags) for p in placed(timed, odd)] == [(None, None, ())]
    two = place_shapes(read_shapes(box(0, 0, 10, 10)), [odd, odd])
    assert [(p.pixels, p.flags) for p in two] == [(None, ("input-unknown",))]


def test_the_python_api_reads_and_places() -> None:
    import vlcli

    plan = vlcli.plan_image(641, 359, vlcli.SamplingOptions(), QWEN2_5_VL)
    [shape] = vlcli.place_shapes(vlcli.read_shapes(box(100, 100, 500, 300, "cat")), [plan])
    assert shape.to_dict() == {
        "label": "cat",
        "box": [100, 99, 498, 296],
        "model": [100.0, 100.0, 500.0, 300.0],
        "flags": [],
    }
    # a window answered before is read back from its record as it was placed
    assert vlcli.PlacedShape.from_dict("box", shape.to_dict()) == shape


# ---------------------------------------------------------------- through vlcli ask --json


def _ask_json(*args: Any) -> dict[str, Any]:
    r = invoke("ask", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


# Each size's box and its source pixels, as worked out in the tests above.
RESIZED_CASES = [  # Qwen2.5-VL: pixels of the resized input
    ((4000, 3000), (1001, 749, 2002, 1498), [1000, 750, 2000, 1500]),
    ((641, 359), (100, 100, 500, 300), [100, 99, 498, 296]),
    ((1, 1), (0, 0, 56, 56), [0, 0, 1, 1]),
    ((3000, 20), (0, 7, 1498, 21), [0, 5, 1500, 15]),
]
RELATIVE_CASES = [  # Qwen2-VL, Qwen3-VL: thousandths
    ((4000, 3000), (250, 250, 500, 500), [1000, 750, 2000, 1500]),
    ((641, 359), (100, 100, 500, 300), [64, 36, 321, 108]),
    ((1, 1), (0, 0, 1000, 1000), [0, 0, 1, 1]),
    ((3000, 20), (0, 250, 500, 750), [0, 5, 1500, 15]),
]


@pytest.mark.parametrize(
    ("family", "size", "stated", "expected"),
    [(QWEN2_5_VL, *case) for case in RESIZED_CASES]
    + [(family, *case) for family in (QWEN2_VL, QWEN3_VL) for case in RELATIVE_CASES],
    ids=lambda v: v.name if isinstance(v, Family) else None,
)
def test_ask_json_maps_a_forced_answer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    family: Family,
    size: tuple[int, int],
    stated: tuple[int, ...],
    expected: list[int],
) -> None:
    image = tmp_path / f"{size[0]}x{size[1]}.png"
    Image.new("RGB", size, "white").save(image)
    force_answer(monkeypatch, family, box(*stated, label="cat"))
    record = _ask_json(image, "Where is the cat?", "--task", "detect")
    assert record["boxes"] == [
        {"label": "cat", "box": expected, "model": [float(v) for v in stated], "flags": []}
    ]
    assert record["points"] == []


@pytest.mark.parametrize(
    ("family", "stated", "frame_s"),
    [
        # Time 1.0 s: Qwen2.5-VL's temporal patch 1 (second_per_grid_t 1.0), which starts on
        # source frame 33: 1.32 s. Qwen2-VL counts the same patches (1.0 s / 1.0 s = patch 1).
        (QWEN2_5_VL, (126, 224, 252, 448), 1.32),
        (QWEN2_VL, (500, 500, 1000, 1000), 1.32),
        # Qwen3-VL is shown source timestamps: 1.0 s is 1.0 s, on the frame shown then: 0.64 s.
        (QWEN3_VL, (500, 500, 1000, 1000), 0.64),
    ],
    ids=["qwen2_5_vl", "qwen2_vl", "qwen3_vl"],
)
def test_ask_json_maps_a_box_on_a_rotated_clip(
    clip_rotated: str,
    monkeypatch: pytest.MonkeyPatch,
    family: Family,
    stated: tuple[int, ...],
    frame_s: float,
) -> None:
    # Coded 320x180 with a 90-degree matrix: displayed 180x320, 25 fps, 2 s: 4 frames at 2 fps
    # (source frames 0, 16, 33, 49). For Qwen2.5-VL, 180x320 = 57600 px is under the 128-token
    # minimum (100352 px): scaled by sqrt(100352/57600) = 1.3199 and rounded up to 28:
    # 180 * 1.3199 / 28 = 8.49 -> 9*28 = 252, 320 * 1.3199 / 28 = 15.08 -> 16*28 = 448.
    # Box: 126 * 180/252 = 90, 252 -> 180; 224 * 320/448 = 160, 448 -> 320. In thousandths:
    # 0.5 * 180 = 90, 0.5 * 320 = 160.
    answer = json.dumps([{"time": 1.0, "bbox_2d": list(stated), "label": "x"}])
    force_answer(monkeypatch, family, answer)
    record = _ask_json(clip_rotated, "Where is it?", "--task", "detect")
    [found] = record["boxes"]
    assert found["box"] == [90, 160, 180, 320] and found["flags"] == []
    assert found["frame_s"] == pytest.approx(frame_s)


# ---------------------------------------------------------------- evidence, crops, table, budget

RED = (255, 0, 0)  # the first colour of vlcli.outputs.drawing.PALETTE


def _gradient(path: Path, size: tuple[int, int]) -> Image.Image:
    from helpers_media import make_image

    make_image(path, size)
    return Image.open(path).convert("RGB")


def test_evidence_draws_the_box_on_the_source_and_crops_cut_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _gradient(tmp_path / "odd.png", (641, 359))
    force_answer(monkeypatch, QWEN2_5_VL, box(100, 100, 500, 300, "cat"))
    shots, crops = tmp_path / "shots", tmp_path / "crops"
    record = _ask_json(tmp_path / "odd.png", "cat", "--task", "detect",
                       "--evidence", shots, "--crops", crops)  # fmt: skip
    assert record["evidence"] == [str(shots / "odd_boxes.png")]
    assert record["crops"] == [str(crops / "odd_box1.png")]
    drawn = Image.open(shots / "odd_boxes.png").convert("RGB")
    assert drawn.size == (641, 359)
    # The box is edges 100, 99, 498, 296 (test_qwen2_5_vl_odd_641x359): columns 100..497,
    # rows 99..295, its outline one pixel wide (359 // 300 = 1) on the outermost of them.
    for y in range(99, 296):
        assert drawn.getpixel((100, y)) == RED and drawn.getpixel((497, y)) == RED
    for x in range(100, 498):
        assert drawn.getpixel((x, 99)) == RED and drawn.getpixel((x, 295)) == RED
    for inside_or_out in [(101, 150), (496, 150), (300, 100), (300, 294), (99, 150), (498, 150),
                          (300, 98), (300, 296)]:  # fmt: skip
        assert drawn.getpixel(inside_or_out) == source.getpixel(inside_or_out)
    cut = Image.open(crops / "odd_box1.png").convert("RGB")
    assert cut.size == (398, 197)
    assert cut.tobytes() == source.crop((100, 99, 498, 296)).tobytes()


def test_labels_of_any_text_are_recorded_drawn_and_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label is the model's text: an escape of no character (a lone surrogate), a control
    character, a script the drawing font lacks; none of them stops the record."""
    image = tmp_path / "odd.png"
    Image.new("RGB", (641, 359), "white").save(image)
    labels = ['"\\ud800x"', '"\\u0007bell"', '"猫 🐱"']  # as JSON writes them
    objects = [
        f'{{"bbox_2d": [{10 * k}, 10, 300, 300], "label": {t}}}' for k, t in enumerate(labels)
    ]
    answer = "[" + ", ".join(objects) + "]"
    force_answer(monkeypatch, QWEN2_5_VL, answer)
    record = _ask_json(image, "cat", "--task", "detect", "--evidence", tmp_path / "shots")
    assert [b["label"] for b in record["boxes"]] == ["\ufffdx", "\u0007bell", "猫 🐱"]
    assert Path(record["evidence"][0]).exists()
    r = invoke("ask", image, "cat", "--task", "detect")
    assert r.exit_code == 0, r.stderr
    assert "猫" in r.stdout


def test_a_video_box_is_drawn_on_its_frame_upright(
    tmp_path: Path, clip_rotated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # test_ask_json_maps_a_box_on_a_rotated_clip's box: pixels 90 160 180 320 of the frame at
    # 1.32 s, displayed 180x320 (the outline 320 // 300 = 1 pixel wide)
    answer = json.dumps([{"time": 1.0, "bbox_2d": [126, 224, 252, 448], "label": "x"}])
    force_answer(monkeypatch, QWEN2_5_VL, answer)
    record = _ask_json(clip_rotated, "it", "--task", "detect", "--evidence", tmp_path)
    name = tmp_path / "rotated_00-00-01.320_boxes.png"
    assert str(name) in record["evidence"]
    drawn = Image.open(name).convert("RGB")
    assert drawn.size == (180, 320)
    assert all(drawn.getpixel((90, y)) == RED for y in range(160, 320))
    assert all(drawn.getpixel((x, 319)) == RED for x in range(90, 180))


def test_a_terminal_shows_the_boxes_in_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "odd.png"
    Image.new("RGB", (641, 359), "white").save(image)
    force_answer(monkeypatch, QWEN2_5_VL, "The cat is in the box [100, 100, 500, 300].")
    r = invoke("ask", image, "Where is the cat?")
    assert r.exit_code == 0, r.stderr
    assert "boxes and points in source pixels" in r.stdout
    assert "100 99 498 296" in r.stdout and "100 100 500 300" in r.stdout


@pytest.mark.parametrize(
    ("model", "system", "extent"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "resized-pixels", [644.0, 364.0]),
        ("Qwen/Qwen3-VL-8B-Instruct", "relative-1000", [1000.0, 1000.0]),
    ],
)
def test_budget_says_what_boxes_are_measured_in(
    tmp_path: Path, model: str, system: str, extent: list[float]
) -> None:
    image = tmp_path / "odd.png"
    Image.new("RGB", (641, 359), "white").save(image)
    r = invoke("budget", image, "--model", model, "--json")
    assert r.exit_code == 0, r.stderr
    coordinates = json.loads(r.stdout)["coordinates"]
    assert coordinates["system"] == system and coordinates["extent"] == extent
    assert coordinates["source"] == [641, 359]
    text = invoke("budget", image, "--model", model).stdout
    assert f"source x = x * 641/{extent[0]:g}, y = y * 359/{extent[1]:g}" in text


def test_windows_keep_each_box_on_its_own_windows_frame(
    tmp_path: Path, clip_landscape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 s at 25 fps in windows of 2 s: each window's 0.0 s is its own first frame (0 s, 2 s).
    # 320x180 is shown 448x252 (the 128-token minimum, as the rotated clip's 180x320 is shown
    # 252x448): 224 * 320/448 = 160, 126 * 180/252 = 90.
    answer = json.dumps([{"time": 0.0, "bbox_2d": [0, 0, 224, 126], "label": "top left"}])
    force_answer(monkeypatch, QWEN2_5_VL, answer)
    out = tmp_path / "runs.jsonl"
    r = invoke("ask", clip_landscape, "it", "--task", "detect", "--window", "2", "--json",
               "--overlap", "0", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    record = json.loads(r.stdout.splitlines()[-1])
    assert [b["frame_s"] for b in record["boxes"]] == pytest.approx([0.0, 2.0])
    assert {tuple(b["box"]) for b in record["boxes"]} == {(0, 0, 160, 90)}


def test_a_video_box_without_a_time_is_said_not_drawn(
    tmp_path: Path, clip_rotated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_answer(monkeypatch, QWEN2_5_VL, box(0, 0, 126, 224, "x"))  # no time: unplaced
    r = invoke("ask", clip_rotated, "it", "--task", "detect", "--evidence", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    [found] = json.loads(r.stdout)["boxes"]
    assert found["flags"] == ["unplaced"] and found["box"] == [0, 0, 90, 160]
    assert "1 of the boxes and points have no frame" in r.stderr
    assert not list(tmp_path.glob("*_boxes.png"))


def test_an_answer_asked_again_replaces_the_earlier_answers_crops_and_drawings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two boxes, then one, then none: the folders hold the last answer's files only; a file
    vlcli did not write, named as a crop, is left alone."""
    _gradient(tmp_path / "odd.png", (641, 359))
    shots, crops = tmp_path / "shots", tmp_path / "crops"
    crops.mkdir()
    (crops / "odd_box7.png").write_bytes(b"the user's own")

    def ask(answer: str) -> dict[str, Any]:
        force_answer(monkeypatch, QWEN2_5_VL, answer)
        return _ask_json(tmp_path / "odd.png", "cat", "--task", "detect",
                         "--evidence", shots, "--crops", crops)  # fmt: skip

    two = json.dumps([{"bbox_2d": [10, 10, 50, 50], "label": "a"},
                      {"bbox_2d": [60, 60, 90, 90], "label": "b"}])  # fmt: skip
    assert len(ask(two)["crops"]) == 2
    assert ask(box(100, 100, 500, 300, "cat"))["crops"] == [str(crops / "odd_box1.png")]
    assert sorted(p.name for p in crops.glob("*.png")) == ["odd_box1.png", "odd_box7.png"]
    none = ask("No cat here.")
    assert none["crops"] == [] and none["boxes"] == []
    assert [p.name for p in crops.glob("*.png")] == ["odd_box7.png"]
    assert not list(shots.glob("*_boxes.png"))
