"""`budget` counts the prompt exactly as `ask` builds it: same template, same tokenizer.

With the model's files on disk, budget renders the model's chat template and counts with its
tokenizer.json (no torch); ask tokenizes with the processor. Both numbers must be equal for
every family, task and system prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vlcli.cli.app import app
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.plan import SamplingOptions, plan_image, plan_video
from vlcli.planning.prompt import count_prompt_tokens, expand_text, prompt_files, render
from vlcli.planning.tasks import build_prompt

pytest_plugins = ("conftest_models",)

FAMILIES = [
    "tiny_qwen2_path",
    "tiny_qwen25_path",
    "tiny_qwen3_path",
    "tiny_qwen3_moe_path",
    "tiny_qwen35_path",
    "tiny_qwen35_moe_path",
]


def _media(spec: Any, clip: str, image: str | None) -> list[tuple[str, Any]]:
    media: list[tuple[str, Any]] = [
        (clip, plan_video(probe(clip).video_facts(), SamplingOptions(), spec.family))
    ]
    if image is not None:
        info = probe(image)
        media.append((image, plan_image(info.width, info.height, SamplingOptions(), spec.family)))
    return media


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("system", [None, "Answer in seconds."])
def test_the_template_renders_as_the_processor_renders_it(
    family: str, system: str | None, request: pytest.FixtureRequest, tiny_clip: str, tiny_image: str
) -> None:
    from transformers import AutoProcessor

    folder = str(request.getfixturevalue(family))
    spec = resolve_model(folder)
    media = _media(spec, tiny_clip, tiny_image)
    files = prompt_files(folder)
    assert files is not None
    processor = AutoProcessor.from_pretrained(folder)
    from vlcli.planning.prompt import build_messages

    theirs = processor.apply_chat_template(
        build_messages(media, "When?", system), tokenize=False, add_generation_prompt=True
    )
    assert render(files, media, "When?", system) == theirs
    # and the exact count equals the processor's tokenizer on the full text
    full = expand_text(theirs, media, spec.family)
    ids = processor.tokenizer([full], return_token_type_ids=False)["input_ids"][0]
    count, exact = count_prompt_tokens(folder, spec.family, media, "When?", system)
    assert exact and count == len(ids)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("task", "question"),
    [
        ("qa", "What happens here?"),
        ("ground", "the ball"),
        ("caption", ""),
        ("detect", "the ball"),  # a video's detect prompt also asks for the time of each box
    ],
)
def test_budget_counts_what_ask_sends(
    family: str, task: str, question: str, request: pytest.FixtureRequest, tiny_clip: str
) -> None:
    folder = str(request.getfixturevalue(family))
    runner = CliRunner()
    given = [question] if question else []
    asked = runner.invoke(
        app,
        ["ask", tiny_clip, *given, "--model", folder, "--task", task, "--json"]
        + ["--max-new-tokens", "1", "--system", "Be brief."],
    )
    # a model that thinks by default (Qwen3.5) spends its one new token inside its reasoning:
    # its record fails for that (status 4) and still counts the prompt it was sent
    thinks = "inside the model's reasoning" in asked.stderr
    assert asked.exit_code == (4 if thinks else 0), asked.stderr
    assert thinks == family.startswith("tiny_qwen35"), asked.stderr
    budgeted = runner.invoke(
        app,
        ["budget", tiny_clip, "--model", folder, "--task", task, "--question", question, "--json"]
        + ["--system", "Be brief."],
    )
    assert budgeted.exit_code == 0, budgeted.stderr
    (a,) = [json.loads(x) for x in asked.stdout.splitlines()]
    (b,) = [json.loads(x) for x in budgeted.stdout.splitlines()]
    assert b["prompt_tokens_exact"] is True
    assert b["prompt_tokens"] == a["prompt_tokens"]


def test_without_the_model_files_the_text_is_estimated(tiny_clip: str) -> None:
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    media = _media(spec, tiny_clip, None)
    count, exact = count_prompt_tokens(None, spec.family, media, build_prompt("qa", "Why?"))
    assert not exact and count > media[0][1].visual_tokens


def test_budget_without_a_question_counts_the_task_alone(
    tiny_clip: str, tiny_qwen25_path: Path
) -> None:
    def tokens(*args: str) -> int:
        r = CliRunner().invoke(
            app, ["budget", tiny_clip, "--model", str(tiny_qwen25_path), "--json", *args]
        )
        assert r.exit_code == 0, r.stderr
        return int(json.loads(r.stdout)["prompt_tokens"])

    plain, ground = tokens(), tokens("--task", "ground")
    assert tokens("--question", "How many dogs are there?") > plain
    assert ground > plain and tokens("--task", "ground", "--question", "a dog") > ground
