"""Prompt presets for --task."""

from __future__ import annotations

import pytest

from vlcli.planning.tasks import (
    CAPTION_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TASK,
    GROUND_TEMPLATE,
    TASKS,
    build_prompt,
    grounding_query,
)
from vlcli.times.parse import parse_times

GROUND_TAIL = (
    "When does the described content occur in the video? "
    "Answer with its start time and end time, in seconds."
)

PROMPTS = [
    ("qa", "How many people are there?", "How many people are there?"),
    ("qa", "  Describe the video.\n", "Describe the video."),
    ("qa", "When does the dog jump?", "When does the dog jump?"),  # qa never rewrites
    ("ground", "When does the dog jump?", f'Give the query: "the dog jump". {GROUND_TAIL}'),
    ("ground", "when did the goal happen", f'Give the query: "the goal". {GROUND_TAIL}'),
    (
        "ground",
        "At what time does the car stop?",
        f'Give the query: "the car stop". {GROUND_TAIL}',
    ),
    (
        "ground",
        "a person pours water into a glass.",
        f'Give the query: "a person pours water into a glass". {GROUND_TAIL}',
    ),
    (
        "ground",
        '"the man opens the door"',
        f'Give the query: "the man opens the door". {GROUND_TAIL}',
    ),
    ("caption", "", CAPTION_PROMPT),
    ("caption", "   ", CAPTION_PROMPT),
    ("caption", "the cooking", CAPTION_PROMPT + " Describe only events about: the cooking"),
]


@pytest.mark.parametrize(("task", "question", "expected"), PROMPTS)
def test_build_prompt(task: str, question: str, expected: str) -> None:
    assert build_prompt(task, question) == expected


@pytest.mark.parametrize(
    ("question", "query"),
    [
        ("When does the man open the door?", "the man open the door"),
        ("When do the players celebrate?", "the players celebrate"),
        ("when does the storm occur", "the storm"),
        ("When does the parade take place?", "the parade"),
        ("When is the cake cut?", "When is the cake cut"),  # kept as written
        ("  the   dog   jumps  ", "the dog jumps"),
        ("“the dog jumps”", "the dog jumps"),
    ],
)
def test_grounding_query(question: str, query: str) -> None:
    assert grounding_query(question) == query


@pytest.mark.parametrize(
    ("task", "question"),
    [("qa", ""), ("qa", "   "), ("ground", ""), ("ground", "?"), ("summarize", "x"), ("", "x")],
)
def test_build_prompt_errors(task: str, question: str) -> None:
    with pytest.raises(ValueError):
        build_prompt(task, question)


def test_tasks_table() -> None:
    assert list(TASKS) == ["qa", "ground", "caption", "detect", "point"]
    assert DEFAULT_TASK == "qa"
    for help_text in TASKS.values():
        assert help_text and "\n" not in help_text and len(help_text) < 90
    assert DEFAULT_SYSTEM_PROMPT == "You are a helpful assistant."


def test_prompts_ask_for_what_the_parser_reads() -> None:
    assert "{query}" in GROUND_TEMPLATE and "seconds" in GROUND_TEMPLATE
    for key in ('"start_time"', '"end_time"', '"description"', "JSON", "seconds"):
        assert key in CAPTION_PROMPT
    # Answers of the shape each prompt asks for come back as spans.
    ground_answer = "The dog jumps from 12.5 to 20.0 seconds."
    caption_answer = (
        '```json\n[{"start_time": 0.0, "end_time": 4.0, "description": "A dog sleeps."},\n'
        ' {"start_time": 4.0, "end_time": 9.5, "description": "The dog jumps."}]\n```'
    )
    assert [(s.start_s, s.end_s) for s in parse_times(ground_answer)] == [(12.5, 20.0)]
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(caption_answer)] == [
        (0.0, 4.0, "A dog sleeps."),
        (4.0, 9.5, "The dog jumps."),
    ]


def test_spatial_prompts_ask_for_the_keys_the_reader_reads() -> None:
    """detect and point ask in the cookbooks' terms (locate every instance, coordinates in JSON)
    for the keys vlcli.space.read reads; a video's prompt also asks for the time of each."""
    image = build_prompt("detect", "  the red cars? ")
    assert image == (
        'Locate every instance of "the red cars" in the image. Report the bbox coordinates of '
        'each in JSON format, as a list of objects with the keys "bbox_2d" and "label".'
    )
    video = build_prompt("point", "the ball", video=True)
    assert '"point_2d"' in video and "in the video" in video and '"time"' in video
    with pytest.raises(ValueError):
        build_prompt("detect", "  ")
