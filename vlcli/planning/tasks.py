"""Prompt presets for ``vlcli ask --task``.

Pure text: no torch, no transformers.

- ``qa`` (the default) sends the question as the user wrote it.
- ``ground`` (temporal grounding) asks when something happens, for a start and an end time in
  seconds. The wording follows the video-grounding prompt of the Qwen2.5-VL cookbook
  (``cookbooks/video_understanding.ipynb``, "Video Grounding": give the query, ask when "the
  described content" occurs, ask for seconds), the phrasing these models were tuned on for
  temporal grounding; we ask for both ends explicitly.
- ``caption`` (dense captioning) asks for every event with its start, end and a one-sentence
  description, as a JSON list with ``start_time``, ``end_time`` and ``description``. It follows
  the structure of the cookbook's "Structured Video Captioning" prompt (localize a series of
  events, start and end of each, describe each, answer in JSON), but asks for plain seconds
  rather than ``mm:ss.ff``, so that the answer needs no clock arithmetic; the parser in
  :mod:`vlcli.times.parse` reads either.
- ``detect`` (boxes) and ``point`` (points) ask where every instance of what the question names
  is, as a JSON list of objects with ``bbox_2d`` (or ``point_2d``) and ``label``. They follow
  the spatial-understanding prompts of the Qwen cookbooks (``cookbooks/spatial_understanding
  .ipynb`` of Qwen2.5-VL, ``cookbooks/2d_grounding.ipynb`` of Qwen3-VL: locate every instance,
  report the bbox or point coordinates in JSON format, the keys these models were tuned to
  write). A video's prompt also asks for the ``time`` each is seen at, in seconds, so that each
  box is on a frame (:mod:`vlcli.space.place`). The coordinates are the family's own
  (:class:`~vlcli.models.families.Coordinates`); vlcli maps them to source pixels.

>>> build_prompt("qa", "  How many people are there? ")
'How many people are there?'
>>> build_prompt("ground", "When does the dog jump?")  # doctest: +NORMALIZE_WHITESPACE
'Give the query: "the dog jump". When does the described content occur in the video?
 Answer with its start time and end time, in seconds.'
"""

from __future__ import annotations

import re

from vlcli.errors import UsageError

__all__ = ["DEFAULT_SYSTEM_PROMPT", "DEFAULT_TASK", "TASKS", "build_prompt", "grounding_query"]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""The system prompt sent with every request.

It is the one the Qwen2.5-VL chat template inserts when a conversation has none, and the one the
Qwen cookbooks send; stating it keeps Qwen2.5-VL and Qwen3-VL (whose template adds none) alike.
"""

DEFAULT_TASK = "qa"

TASKS: dict[str, str] = {
    "qa": "Ask the question as written (default).",
    "ground": "Find when something happens: asks for its start and end time in seconds.",
    "caption": "Dense captioning: every event with its start, end and a description, as JSON.",
    "detect": "Boxes: every instance of what the question names, with labels, as JSON.",
    "point": "Points: every instance of what the question names, with labels, as JSON.",
}
"""Task names for ``--task``, each with its one-line help."""

GROUND_TEMPLATE = (
    'Give the query: "{query}". When does the described content occur in the video? '
    "Answer with its start time and end time, in seconds."
)

CAPTION_PROMPT = (
    "Localize the series of events in the video. For each event, give its start time and end "
    "time in seconds and describe it in one sentence. Answer with a JSON list of objects with "
    'the keys "start_time" (number, seconds), "end_time" (number, seconds) and "description".'
)

CAPTION_FOCUS = " Describe only events about: {focus}"

PLACE_TEMPLATE = (
    'Locate every instance of "{query}" in the image. Report the {what} coordinates of each in '
    'JSON format, as a list of objects with the keys "{key}" and "label".'
)
PLACE_IN_VIDEO = ' Add the key "time": the second of the video at which it is seen.'
_PLACES = {"detect": ("bbox", "bbox_2d"), "point": ("point", "point_2d")}

# "When does the dog jump?" / "when did the man open the door happen" -> the event itself.
_WHEN_QUESTION = re.compile(
    r"^(?:when|at\s+what\s+(?:time|point|second))\s+(?:does|do|did)\s+(?P<event>.+?)"
    r"(?:\s+(?:happen|occur|take\s+place))?$",
    re.I,
)


def grounding_query(question: str) -> str:
    """The event a grounding question asks about.

    A question of the form "when does/do/did X [happen|occur|take place]?" becomes "X"; any other
    text is kept as it is, less surrounding blanks, quotes and final punctuation.

    >>> grounding_query("When does the man open the door?")
    'the man open the door'
    >>> grounding_query("When did the goal happen?")
    'the goal'
    >>> grounding_query("a person pours water.")
    'a person pours water'
    """
    text = " ".join(question.split()).strip(" \"'“”‘’").rstrip(" ?.!").strip(" \"'“”‘’")
    m = _WHEN_QUESTION.match(text)
    return m["event"] if m else text


def asks_for_places(task: str) -> bool:
    """Whether ``task`` asks for boxes or points (its answer's bare coordinates are read)."""
    return task in _PLACES


def build_prompt(task: str, question: str, video: bool = False) -> str:
    """The user prompt for ``task`` (one of :data:`TASKS`) and the user's ``question``.

    ``qa``, ``ground``, ``detect`` and ``point`` need a question (``ValueError`` when it is blank); for ``caption`` it
    is optional and, when given, narrows the captions to it. An unknown task raises
    ``ValueError`` naming the known ones.

    >>> build_prompt("caption", "")[:45]
    'Localize the series of events in the video. F'
    >>> build_prompt("summarize", "x")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'summarize' (choose from: qa, ground, caption, detect, point)
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (choose from: {', '.join(TASKS)})")
    text = question.strip()
    if task == "caption":
        return CAPTION_PROMPT + (CAPTION_FOCUS.format(focus=text) if text else "")
    if not text:
        raise ValueError(f"the {task!r} task needs a question")
    if task in _PLACES:
        what, key = _PLACES[task]
        prompt = PLACE_TEMPLATE.format(query=text.rstrip(" ?.!"), what=what, key=key)
        if not video:
            return prompt
        return prompt.replace(" in the image", " in the video") + PLACE_IN_VIDEO
    if task == "ground":
        query = grounding_query(text)
        if not query:
            raise ValueError("the 'ground' task needs something to look for")
        return GROUND_TEMPLATE.format(query=query)
    return text


def check_task(task: str) -> None:
    """Refuse a ``--task`` that is not one of :data:`TASKS`: a usage error, before anything runs."""
    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}")
