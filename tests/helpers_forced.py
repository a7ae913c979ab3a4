"""A backend on the :class:`~vlcli.backends.Backend` Protocol that answers every prompt with a
text the test chose: what vlcli does with an answer (boxes mapped, files drawn) is tested with
the answer known, while the models themselves are tested with tiny real ones elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from vlcli.backends import Answer, Prompt
from vlcli.models.families import Family, ModelSpec
from vlcli.planning.plan import VideoPlan


@dataclass(frozen=True)
class Ready:
    prompt: Prompt
    prompt_tokens: int = 1
    decode_s: float = 0.0
    preprocess_s: float = 0.0


class Forced:
    """Answers ``text``; each video's time axis is its plan's (as the transformers backend's)."""

    name = "forced"
    concurrency = 1

    def __init__(self, family: Family, text: str) -> None:
        self.spec = ModelSpec(f"forced/{family.name}", family, None, "test")
        self.text = text

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.spec.model}

    def load(self) -> None: ...

    def check_fit(self, prompt: Prompt, prompt_tokens: int, options: Any) -> None: ...

    def prepare(self, prompt: Prompt, on_frames: Any = None) -> Ready:
        return Ready(prompt)

    def generate(self, prepared: Ready, on_text: Any = None) -> Answer:
        plans = prepared.prompt.plans
        axes = tuple(p.time_axis() for p in plans if isinstance(p, VideoPlan))
        return Answer(self.text, prompt_tokens=1, generated_tokens=1, visual_tokens=0, axes=axes)

    def close(self) -> None: ...


def force_answer(monkeypatch: pytest.MonkeyPatch, family: Family, text: str) -> None:
    """``vlcli ask`` in this test answers ``text`` as a model of ``family`` would."""
    import vlcli.run.engine

    monkeypatch.setattr(
        vlcli.run.engine, "open_backend", lambda *args, **kwargs: Forced(family, text)
    )
