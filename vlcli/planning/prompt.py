"""The prompt's text, and its exact length in tokens, without torch or transformers.

The text is the model's own chat template over one user turn (every media item, then the
question), with each ``<|video_pad|>`` / ``<|image_pad|>`` expanded to one pad token per visual
token, as the processor does; Qwen3-VL's video is one ``<t seconds><|vision_start|>pads
<|vision_end|>`` group per temporal patch, with the timestamps its processor computes.
``vlcli ask`` tokenizes this text (:mod:`vlcli.backends.transformers.model_inputs`); ``vlcli
budget`` counts it here with the model's own ``tokenizer.json`` (the ``tokenizers`` library, no
torch), so that both say the same number when the model's files are on disk.
Without them the text's tokens are estimated.

Counting is exact and quick: the pad tokens are added special tokens, which the tokenizer
splits out before anything else, so the text between them tokenizes the same whatever the
number of pads. Each run of pads is counted as one and the rest added back.

jinja2 and tokenizers are imported only when a model's files are there to count with: every
command (``--help`` too) imports this module.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlcli.errors import UsageError
from vlcli.models.families import Family
from vlcli.planning.plan import ImagePlan, Media, Plan, VideoPlan, estimate_prompt_tokens

IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"


Turns = tuple[tuple[str, str], ...]  # a conversation so far: (question, answer) each


def build_messages(
    media: Media, question: str, system: str | None = None, history: Turns = ()
) -> list[dict[str, Any]]:
    """One user turn: every media item in order, then the question. With ``history`` (a
    conversation, ``vlcli chat``) the media open its first user turn, each earlier question and
    answer follow as user and assistant turns, and the question is the last user turn."""
    content: list[dict[str, Any]] = [{"type": plan.kind} for _, plan in media]
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    for asked, answered in history:
        content.append({"type": "text", "text": asked})
        messages.append({"role": "assistant", "content": answered})
        content = []
        messages.append({"role": "user", "content": content})
    content.append({"type": "text", "text": question})
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def qwen3_timestamps(plan: VideoPlan, temporal_patch_size: int) -> list[float]:
    """Seconds of the source shown before each temporal patch (Qwen3-VL's processor formula)."""
    indices = list(plan.frame_indices)
    while len(indices) % temporal_patch_size:
        indices.append(indices[-1])
    seconds = [i / plan.source_fps for i in indices]
    return [
        (seconds[g] + seconds[g + temporal_patch_size - 1]) / 2
        for g in range(0, len(seconds), temporal_patch_size)
    ]


def placeholder(plan: Plan, family: Family, compact: bool = False) -> str:
    """The text one media item's pad token is replaced with (one pad per run when ``compact``)."""
    merge = family.spatial_merge_size**2
    t, h, w = plan.grid_thw
    if isinstance(plan, ImagePlan):
        return IMAGE_PAD * (1 if compact else t * h * w // merge)
    if not family.time_encoding.states_source_seconds:
        return VIDEO_PAD * (1 if compact else t * h * w // merge)
    per_patch = VISION_START + VIDEO_PAD * (1 if compact else h * w // merge) + VISION_END
    return "".join(
        family.timestamp_text(s) + per_patch
        for s in qwen3_timestamps(plan, family.temporal_patch_size)
    )


def expand_text(text: str, media: Media, family: Family, compact: bool = False) -> str:
    """Replace the template's pad tokens, in order, with each item's placeholder."""
    pads = re.findall(f"{re.escape(IMAGE_PAD)}|{re.escape(VIDEO_PAD)}", text)
    kinds = [IMAGE_PAD if isinstance(p, ImagePlan) else VIDEO_PAD for _, p in media]
    if pads != kinds:
        raise UsageError(
            "the prompt holds media tokens that are not the inputs' (does the question or the "
            f"system prompt contain {IMAGE_PAD} or {VIDEO_PAD}?)"
        )
    items = iter(media)
    return re.sub(
        f"{re.escape(IMAGE_PAD)}|{re.escape(VIDEO_PAD)}",
        lambda _m: placeholder(next(items)[1], family, compact),
        text,
    )


def pads_beyond_one_per_run(plan: Plan, family: Family) -> int:
    """The pads a compact prompt (one pad per run, :func:`placeholder`) leaves out of one item:
    what its tokenized length is short of the full prompt's."""
    t, h, w = plan.grid_thw
    per_run = h * w // family.spatial_merge_size**2
    if isinstance(plan, VideoPlan) and family.time_encoding.states_source_seconds:
        return t * (per_run - 1)  # one run per temporal patch
    return t * per_run - 1


# ---------------------------------------------------------------- the model's own files


@dataclass(frozen=True)
class PromptFiles:
    """A checkpoint's chat template and tokenizer, enough to count a prompt exactly."""

    template: Any  # a compiled jinja2 template
    tokenizer: Any  # tokenizers.Tokenizer
    special: dict[str, str]  # the tokenizer's named special tokens, as the template sees them


def chat_template_text(folder: Path) -> str | None:
    """The chat template as transformers reads it: chat_template.jinja, chat_template.json, or
    tokenizer_config.json's ``chat_template``."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        template = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(template, str):
            return template
    return None


def _compile(template: str) -> Any:
    """The template in a sandbox set up as transformers sets it up (trimmed blocks, loop
    controls, a ``tojson`` that does not escape HTML, ``raise_exception``)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, **kw: Any) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **kw)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


@functools.lru_cache(maxsize=8)
def prompt_files(folder: str) -> PromptFiles | None:
    """The chat template and tokenizer of the checkpoint in ``folder``; None when either is
    missing or cannot be read."""
    path = Path(folder)
    template = chat_template_text(path)
    if template is None or not (path / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        compiled = _compile(template)
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except Exception:  # an unreadable file: the count falls back to the estimate
        return None
    special = {
        k: v if isinstance(v, str) else v.get("content", "")
        for k, v in config.items()
        if k.endswith("_token") and isinstance(v, str | dict)
    }
    return PromptFiles(compiled, tokenizer, special)


def render(
    files: PromptFiles,
    media: Media,
    question: str,
    system: str | None,
    think: bool | None = None,
    history: Turns = (),
) -> str:
    """The chat template over the prompt's messages, with the generation prompt; ``think``
    (``--think`` / ``--no-think``) is its ``enable_thinking``, left undefined when None."""
    switch = {} if think is None else {"enable_thinking": think}
    return str(
        files.template.render(
            messages=build_messages(media, question, system, history),
            add_generation_prompt=True,
            tools=None,
            documents=None,
            **files.special,
            **switch,
        )
    )


def count_prompt_tokens(
    folder: str | None,
    family: Family,
    media: Media,
    question: str,
    system: str | None = None,
    think: bool | None = None,
    history: Turns = (),
) -> tuple[int, bool]:
    """The prompt's length in tokens, and whether it is exact (``think``: as :func:`render`).

    Exact when ``folder`` holds the model's chat template and ``tokenizer.json`` (what ``ask``
    itself uses); otherwise the visual tokens are exact and the text is estimated
    (:func:`vlcli.planning.plan.estimate_prompt_tokens`).
    """
    files = prompt_files(folder) if folder else None
    if files is not None:
        try:
            rendered = render(files, media, question, system, think, history)
            text = expand_text(rendered, media, family, compact=True)
        except UsageError:
            raise
        except Exception:  # a template this sandbox cannot render: estimate instead
            files = None
        else:
            ids = files.tokenizer.encode(text, add_special_tokens=True).ids
            return len(ids) + sum(pads_beyond_one_per_run(p, family) for _, p in media), True
    said = " ".join([*(t for turn in history for t in turn), question])
    return estimate_prompt_tokens([p for _, p in media], said, system), False
