"""Does a prompt fit in the model's context, and which options would make it fit?

A model reads at most its context length of tokens (``max_position_embeddings`` of its text
config: 32,768 for Qwen2-VL, 128,000 for Qwen2.5-VL, 262,144 for Qwen3-VL), prompt and answer
together. Past it, the rotary positions go beyond anything the model was trained on and the
answer is unreliable. ``budget`` warns and ``ask`` refuses (status 5), naming options that fit.

The suggestions are computed, not guessed: each candidate value is planned again with the same
planner ``ask`` uses (pure arithmetic, no decoding) and the largest value whose prompt fits is
named. This module imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vlcli.errors import InputError, UsageError
from vlcli.models.families import Family, ModelSpec
from vlcli.planning.plan import (
    ImagePlan,
    Plan,
    SamplingOptions,
    VideoFacts,
    VideoPlan,
    estimate_prompt_tokens,
    plan_image,
    plan_video,
)

SHRINK = 0.9  # each candidate is this much below the one before: suggestions within 10%
CANDIDATES = 120  # 0.9**120 < 1e-5: far enough down for any video


@dataclass(frozen=True)
class ContextCheck:
    """A prompt's length against the model's context (tokens)."""

    prompt_tokens: int
    new_tokens: int
    context_length: int

    @property
    def fits(self) -> bool:
        return self.prompt_tokens + self.new_tokens <= self.context_length


def check_context(
    spec: ModelSpec, prompt_tokens: int, new_tokens: int, limit: int | None = None
) -> ContextCheck | None:
    """The check for one prompt; None when the context length is unknown.

    ``limit`` is the context the engine allows when it says (a server's ``max_model_len``);
    otherwise the model's own.
    """
    if limit is None:
        limit = spec.dims.context_length if spec.dims is not None else None
    if not limit:
        return None
    return ContextCheck(prompt_tokens, new_tokens, limit)


def _replan(plan: Plan, options: SamplingOptions, family: Family) -> Plan:
    if isinstance(plan, ImagePlan):
        return plan_image(plan.source_width, plan.source_height, options, family)
    facts = VideoFacts(plan.source_width, plan.source_height, plan.source_frames, plan.source_fps)
    return plan_video(facts, options, family)


def _two_digits(x: float) -> float:
    """``x`` rounded down to two significant digits (0.4567 -> 0.45), for a value to type."""
    if x <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return math.floor(x / scale) * scale


def _largest(start: float, fits: Callable[[float], bool], step: float = 0.0) -> float | None:
    """The largest candidate below ``start`` (two significant digits, or multiples of ``step``)
    for which ``fits`` holds, going down by :data:`SHRINK`; None when none does."""
    seen: set[float] = set()
    x = start
    for _ in range(CANDIDATES):
        x *= SHRINK
        value = math.floor(x / step) * step if step else _two_digits(x)
        if value <= 0:
            return None
        if value in seen:
            continue
        seen.add(value)
        try:
            if fits(value):
                return value
        except (UsageError, InputError):  # below what the planner accepts (min pixels...)
            return None
    return None


def fitting_options(
    plans: list[Plan],
    options: SamplingOptions,
    family: Family,
    prompt_tokens: int,
    budget_tokens: int,
) -> list[str]:
    """Options, each of which alone brings the prompt to ``budget_tokens`` or fewer.

    ``prompt_tokens`` is the prompt as planned; its text (template, question) is kept as it is.
    For videos: the largest ``--fps`` (or ``--nframes`` when that was given), ``--max-pixels``
    and ``--total-pixels`` that fit, and for one video the longest clip from ``--start``;
    for images ``--max-pixels``.
    """
    if not plans:
        return []
    text = prompt_tokens - estimate_prompt_tokens(plans, "")

    def tokens(opts: SamplingOptions) -> int:
        return text + estimate_prompt_tokens([_replan(p, opts, family) for p in plans], "")

    def fits(**change: Any) -> bool:
        return tokens(replace(options, **change)) <= budget_tokens

    videos = [p for p in plans if isinstance(p, VideoPlan)]
    hints: list[str] = []
    if videos:
        if options.nframes is not None:
            frames = _largest(options.nframes, lambda n: fits(nframes=int(n)), step=2)
            if frames:
                hints.append(f"--nframes {int(frames)}")
        else:
            fps = _largest(options.fps or max(v.sample_fps for v in videos), lambda f: fits(fps=f))
            if fps:
                hints.append(f"--fps {fps:g}")
    largest_frame = max(p.resized_height * p.resized_width for p in plans)
    pixels = _largest(largest_frame, lambda px: fits(max_pixels=int(px)), step=family.factor**2)
    if pixels:
        hints.append(f"--max-pixels {int(pixels)}")
    if videos:
        total = max(v.frames * v.resized_height * v.resized_width for v in videos)
        total_px = _largest(total, lambda px: fits(total_pixels=int(px)), step=family.factor**2)
        if total_px:
            hints.append(f"--total-pixels {int(total_px)}")
    if len(videos) == 1:
        video = videos[0]
        start = options.start or 0.0
        length = video.clip_end_s - video.clip_start_s + 1.0 / video.source_fps
        seconds = _largest(length, lambda s: fits(start=start, end=start + s), step=1.0)
        if seconds:
            hints.append(
                f"at most {seconds:g} s of the video at a time with --start/--end "
                f"(e.g. --start {start:g} --end {start + seconds:g})"
            )
    return hints


def context_problem(
    spec: ModelSpec,
    plans: list[Plan],
    options: SamplingOptions,
    prompt_tokens: int,
    new_tokens: int,
    limit: int | None = None,
) -> str | None:
    """One line saying why the prompt does not fit the model's context (or ``limit``, the
    engine's) and what would; None when it fits (or the context length is unknown)."""
    check = check_context(spec, prompt_tokens, new_tokens, limit)
    if check is None or check.fits:
        return None
    limit = check.context_length
    hints = fitting_options(plans, options, spec.family, prompt_tokens, limit - new_tokens)
    if prompt_tokens < limit:
        hints.append(f"--max-new-tokens {limit - prompt_tokens}")
    fix = ", or ".join(hints) if hints else "shorten the question"
    return (
        f"{prompt_tokens:,} prompt tokens and {new_tokens:,} new tokens are more than the "
        f"{limit:,} tokens {spec.model} reads (its context length): {fix}"
    )


def fit_hint(plans: list[Plan], options: SamplingOptions) -> str:
    tokens = sum(p.visual_tokens for p in plans)
    if not any(isinstance(p, VideoPlan) for p in plans):  # --fps, --total-pixels: videos only
        return f"{tokens} visual tokens; lower --max-pixels, or pass --force"
    if options.nframes is not None:
        fewer = f"lower --nframes (now {options.nframes})"
    else:
        fps = options.fps if options.fps is not None else 2.0
        fewer = f"lower --fps (now {fps:g}, e.g. --fps {fps / 2:g})"
    return (
        f"{tokens} visual tokens; {fewer}, --max-pixels or --total-pixels, "
        "cut the clip with --start/--end, or pass --force"
    )
