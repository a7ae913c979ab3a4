"""vlcli: probe, budget and ask Qwen vision-language models (Qwen2-VL to Qwen3.5) about videos and images.

The pure parts are a documented Python API, importable without torch::

    from vlcli import parse_times, map_times, format_hms, plan_video, SamplingOptions, VideoFacts
    from vlcli import plan_image, read_shapes, place_shapes, resolve_model

    spans = map_times(parse_times("The dog jumps from 12.5 to 20.0 seconds."), clip_start_s=30.0)
    spans[0].source_start_s  # 42.5

    plan = plan_image(641, 359, SamplingOptions(), resolve_model("Qwen/Qwen2.5-VL-7B-Instruct").family)
    place_shapes(read_shapes('[{"bbox_2d": [100, 100, 500, 300]}]'), [plan])[0].pixels
    # (100, 99, 498, 296): the model's resized-input pixels in pixels of the source

The transformers backend (``vlcli.backends.transformers``; its ``loading`` module) is the only
place that imports transformers; every backend answers through the seam in ``vlcli.backends``.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlcli.errors import ExitStatus, InputError, ModelError, UsageError, VlcliError
    from vlcli.models.families import DEFAULT_MODEL, Family, ModelSpec, resolve_model
    from vlcli.outputs.subtitles import to_srt, to_vtt
    from vlcli.planning.plan import (
        ImagePlan,
        SamplingOptions,
        VideoFacts,
        VideoPlan,
        plan_image,
        plan_video,
    )
    from vlcli.planning.tasks import DEFAULT_SYSTEM_PROMPT, DEFAULT_TASK, TASKS, build_prompt
    from vlcli.space.place import PlacedShape, place_shapes
    from vlcli.space.read import StatedShape, read_shapes
    from vlcli.times.format import format_hms
    from vlcli.times.parse import TimeSpan, map_times, parse_time_value, parse_times

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_TASK",
    "TASKS",
    "ExitStatus",
    "Family",
    "ImagePlan",
    "InputError",
    "ModelError",
    "ModelSpec",
    "PlacedShape",
    "SamplingOptions",
    "StatedShape",
    "TimeSpan",
    "UsageError",
    "VideoFacts",
    "VideoPlan",
    "VlcliError",
    "build_prompt",
    "format_hms",
    "map_times",
    "parse_time_value",
    "parse_times",
    "place_shapes",
    "plan_image",
    "plan_video",
    "read_shapes",
    "resolve_model",
    "to_srt",
    "to_vtt",
]

# Where each name of the API lives: imported on first use, so that ``vlcli``'s own start (which
# must handle a signal from its first line, vlcli.cli.entry) does not wait on them.
_HOMES = {
    "vlcli.errors": ("ExitStatus", "InputError", "ModelError", "UsageError", "VlcliError"),
    "vlcli.models.families": ("DEFAULT_MODEL", "Family", "ModelSpec", "resolve_model"),
    "vlcli.outputs.subtitles": ("to_srt", "to_vtt"),
    "vlcli.planning.plan": (
        "ImagePlan", "SamplingOptions", "VideoFacts", "VideoPlan", "plan_image", "plan_video",
    ),
    "vlcli.planning.tasks": ("DEFAULT_SYSTEM_PROMPT", "DEFAULT_TASK", "TASKS", "build_prompt"),
    "vlcli.space.place": ("PlacedShape", "place_shapes"),
    "vlcli.space.read": ("StatedShape", "read_shapes"),
    "vlcli.times.format": ("format_hms",),
    "vlcli.times.parse": ("TimeSpan", "map_times", "parse_time_value", "parse_times"),
}  # fmt: skip
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module 'vlcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME_OF[name]), name)
    globals()[name] = value
    return value
