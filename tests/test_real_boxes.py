"""read_shapes against boxes and points real models (and real data in their formats) wrote.

``data/real_boxes.jsonl`` holds one answer a line, with where it was found (``source``: a
cookbook notebook's cell at a commit, or an issue's URL and which part of it), the model, the
prompt when known, and the boxes and points a careful reader finds in it, in order
(``expected``: ``kind``, ``coords`` in the model's own coordinates, ``label``; a label of
``null`` is not checked). Answers with none are there too: a reader that finds a box in prose,
in frame numbers or in a template is wrong. ``excerpt`` marks a text that is part of what was
published (the tool calls of an agent's turn, an issue's text where it was cut).

The answers of the time corpus (``../shared/answers/real_answers.jsonl``, beside the clone)
state times, never positions: none of them may yield a box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_real_answers import ROWS as TIME_ROWS

from vlcli.space.read import read_shapes

CORPUS = Path(__file__).parent / "data" / "real_boxes.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def test_the_corpus_holds_what_the_readme_says() -> None:
    shapes = sum(len(row["expected"]) for row in ROWS)
    assert (len(ROWS), shapes) == (21, 34)
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    assert all(row["source"] and row["text"] for row in ROWS)
    assert sum(not row["expected"] for row in ROWS) == 9  # answers with no box nor point


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_real_answer_is_read_as_a_careful_reader_reads_it(row: dict[str, Any]) -> None:
    got = read_shapes(row["text"], boxes_asked=row["task"] == "detect")
    assert [(s.kind, list(s.coords)) for s in got] == [
        (e["kind"], [float(c) for c in e["coords"]]) for e in row["expected"]
    ], row["notes"]
    for shape, expected in zip(got, row["expected"], strict=True):
        if expected["label"] is not None:
            assert shape.label == expected["label"], row["notes"]


@pytest.mark.skipif(not TIME_ROWS, reason="no time corpus beside the clone")
def test_no_time_answer_yields_a_box() -> None:
    found = {row["id"]: read_shapes(row["text"]) for row in TIME_ROWS}
    assert {k: v for k, v in found.items() if v} == {}
