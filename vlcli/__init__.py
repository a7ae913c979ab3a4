"""vlcli: probe, budget and ask Qwen2.5-VL-family models about videos and images.

The pure parts are a documented Python API, importable without torch::

    from vlcli import parse_times, map_times, format_hms, plan_video, SamplingOptions, VideoFacts

    spans = map_times(parse_times("The dog jumps from 12.5 to 20.0 seconds."), clip_start_s=30.0)
    spans[0].source_start_s  # 42.5

The transformers backend (``vlcli.backends.transformers.backend``) is the only module that imports
transformers; every backend answers through the seam in ``vlcli.backends``.
"""

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
    "SamplingOptions",
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
    "plan_image",
    "plan_video",
    "resolve_model",
    "to_srt",
    "to_vtt",
]
