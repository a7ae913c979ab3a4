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
    """Answers ``text``, streamed in pieces of five characters (a tag or a character may be cut
    between two), as a model of ``model`` would: a family, or a checkpoint's spec when the run
    reads its files (a thinking model's chat template). Each video's time axis is its plan's,
    as the transformers backend's; ``generated_tokens`` is what the answer says it used."""

    name = "forced"
    concurrency = 1

    def __init__(self, model: Family | ModelSpec, text: str, generated_tokens: int = 20) -> None:
        if isinstance(model, Family):
            model = ModelSpec(f"forced/{model.name}", model, None, "test")
        self.spec, self.text, self.generated_tokens = model, text, generated_tokens

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.spec.model}

    def load(self) -> None: ...

    def check_fit(self, prompt: Prompt, prompt_tokens: int, options: Any) -> None: ...

    def prepare(self, prompt: Prompt, on_frames: Any = None) -> Ready:
        return Ready(prompt)

    def generate(self, prepared: Ready, on_text: Any = None) -> Answer:
        for k in range(0, len(self.text), 5):
            if on_text is not None:
                on_text(self.text[k : k + 5])
        plans = prepared.prompt.plans
        axes = tuple(p.time_axis() for p in plans if isinstance(p, VideoPlan))
        used = self.generated_tokens
        return Answer(self.text, prompt_tokens=1, generated_tokens=used, visual_tokens=0, axes=axes)

    def close(self) -> None: ...


def force_answer(monkeypatch: pytest.MonkeyPatch, model: Family | ModelSpec, text: str) -> Forced:
    """``vlcli ask`` in this test answers ``text`` as a model of ``model`` would (see
    :class:`Forced`); the backend, to change its text between runs."""
    import vlcli.run.engine

    backend = Forced(model, text)
    monkeypatch.setattr(vlcli.run.engine, "open_backend", lambda *args, **kwargs: backend)
    return backend
