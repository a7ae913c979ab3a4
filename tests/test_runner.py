"""TransformersBackend: real loading code on tiny saved models, answers, streaming, errors."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from helpers_backend import ask_media

from vlcli.backends import Answer
from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.errors import ExitStatus, ModelError, UsageError, VlcliError
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.plan import SamplingOptions, plan_image, plan_video

pytest_plugins = ("conftest_models",)

QUESTION = "What happens in this clip, and when?"
TIMINGS = {"decode_s", "preprocess_s", "prefill_s", "decode_tokens_s", "generate_s"}


def _video_plan(runner: TransformersBackend, clip: str, options: SamplingOptions | None = None):  # type: ignore[no-untyped-def]
    return plan_video(probe(clip).video_facts(), options or SamplingOptions(), runner.family)


def _image_plan(runner: TransformersBackend, image: str):  # type: ignore[no-untyped-def]
    info = probe(image)
    return plan_image(info.width, info.height, SamplingOptions(), runner.family)


def _quiet(_message: str) -> None:
    pass


def test_loads_with_the_cpu_defaults(tiny_qwen25_path: Path) -> None:
    warnings: list[str] = []
    runner = TransformersBackend(str(tiny_qwen25_path), warn=warnings.append)
    assert runner.spec.family.name == "qwen2_5_vl" and runner.spec.model == str(tiny_qwen25_path)
    assert runner.family.tokens_per_second == 2
    if not torch.cuda.is_available():
        assert runner.device.type == "cpu" and runner.dtype == torch.float32
        assert runner.dtype_name == "float32"
        assert runner.free_memory_bytes() is None
        assert any("slow" in w for w in warnings)
    assert runner.model.config._attn_implementation == "sdpa"
    assert getattr(runner.model.model.get_rope_index, "vlcli_reference", False)


def test_ask_video(qwen25_runner: TransformersBackend, tiny_clip: str) -> None:
    plan = _video_plan(qwen25_runner, tiny_clip)
    inputs, stats = qwen25_runner.inputs_for([(tiny_clip, plan)], QUESTION)
    pieces: list[str] = []
    answer = ask_media(
        qwen25_runner, [(tiny_clip, plan)], QUESTION, max_new_tokens=8, on_text=pieces.append
    )
    assert isinstance(answer, Answer) and isinstance(answer.text, str)
    assert answer.prompt_tokens == inputs["input_ids"].shape[1] == stats.prompt_tokens
    cfg = qwen25_runner.model.config
    assert (
        int((inputs["input_ids"] == cfg.video_token_id).sum())
        == plan.visual_tokens
        == answer.visual_tokens
    )
    assert 1 <= answer.generated_tokens <= 8
    assert "".join(pieces) == answer.text
    assert set(answer.timings) == TIMINGS and all(v >= 0 for v in answer.timings.values())
    tm = answer.timings
    assert tm["prefill_s"] <= tm["generate_s"]
    assert tm["prefill_s"] + tm["decode_tokens_s"] == pytest.approx(tm["generate_s"], abs=2e-4)
    d = answer.to_dict()
    assert d["text"] == answer.text and d["timings"] == answer.timings


def test_ask_image(qwen25_runner: TransformersBackend, tiny_image: str) -> None:
    plan = _image_plan(qwen25_runner, tiny_image)
    answer = ask_media(
        qwen25_runner, [(tiny_image, plan)], "Describe the picture.", max_new_tokens=4
    )
    assert isinstance(answer.text, str) and answer.visual_tokens == plan.visual_tokens
    assert 1 <= answer.generated_tokens <= 4


def test_media_go_into_one_user_turn(
    qwen25_runner: TransformersBackend, tiny_clip: str, tiny_image: str
) -> None:
    media = [
        (tiny_clip, _video_plan(qwen25_runner, tiny_clip)),
        (tiny_image, _image_plan(qwen25_runner, tiny_image)),
    ]
    inputs, stats = qwen25_runner.inputs_for(media, QUESTION, system="Answer in seconds.")
    text = qwen25_runner.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.count("<|im_start|>user") == 1 and text.count("<|im_start|>") == 3
    assert "<|im_start|>system\nAnswer in seconds.<|im_end|>" in text
    assert text.index("<|video_pad|>") < text.index("<|image_pad|>") < text.index(QUESTION)
    assert text.endswith("<|im_start|>assistant\n")
    assert stats.visual_tokens == sum(p.visual_tokens for _, p in media)
    types = inputs["mm_token_type_ids"][0]
    assert (
        int((types == 2).sum()) == media[0][1].visual_tokens
        and int((types == 1).sum()) == media[1][1].visual_tokens
    )
    assert inputs["pixel_values_videos"].dtype == qwen25_runner.dtype
    assert inputs["video_grid_thw"].tolist() == [list(media[0][1].grid_thw)]
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([media[0][1].second_per_grid_t])


def test_streaming_matches_the_answer_when_sampling(
    qwen25_runner: TransformersBackend, tiny_clip: str
) -> None:
    plan = _video_plan(qwen25_runner, tiny_clip, SamplingOptions(nframes=4))
    pieces: list[str] = []
    torch.manual_seed(7)
    answer = ask_media(
        qwen25_runner,
        [(tiny_clip, plan)],
        QUESTION,
        max_new_tokens=24,
        temperature=1.5,
        on_text=pieces.append,
    )
    assert "".join(pieces) == answer.text
    assert len(pieces) > 1 and len(set(answer.text)) > 1  # streamed piece by piece, varied text


def test_chunks_are_whole_temporal_patches(
    qwen25_runner: TransformersBackend, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of a chunk are contiguous (temporal patch outermost): any even chunk size gives the
    same tensor as one chunk holding the whole video."""
    import vlcli.backends.transformers.model_inputs

    plan = _video_plan(qwen25_runner, tiny_clip, SamplingOptions(nframes=12))
    results = []
    for frames in (2, 6, 12):
        monkeypatch.setattr(vlcli.backends.transformers.model_inputs, "CHUNK_FRAMES", frames)
        inputs, _ = qwen25_runner.inputs_for([(tiny_clip, plan)], QUESTION)
        results.append(inputs["pixel_values_videos"])
    assert torch.equal(results[0], results[2]) and torch.equal(results[1], results[2])


def test_decoding_progress(qwen25_runner: TransformersBackend, tiny_clip: str) -> None:
    """on_frames hears every chunk of every video of the prompt, up to all of them."""
    plan = _video_plan(qwen25_runner, tiny_clip, SamplingOptions(nframes=6))
    heard: list[tuple[int, int]] = []
    qwen25_runner.inputs_for(
        [(tiny_clip, plan), (tiny_clip, plan)], QUESTION, on_frames=lambda *a: heard.append(a)
    )
    assert heard == [(n, 12) for n in range(2, 13, 2)]


def test_refuses_a_plan_made_for_another_family(
    qwen25_runner: TransformersBackend, tiny_clip: str
) -> None:
    from vlcli.models.families import QWEN3_VL

    plan = plan_video(probe(tiny_clip).video_facts(), SamplingOptions(), QWEN3_VL)
    with pytest.raises(UsageError, match="qwen3_vl"):
        qwen25_runner.inputs_for([(tiny_clip, plan)], QUESTION)


OTHER_FAMILIES = [
    "tiny_qwen2_path",
    "tiny_qwen3_path",
    "tiny_qwen3_moe_path",
    "tiny_qwen35_path",
    "tiny_qwen35_moe_path",
]


@pytest.mark.parametrize("fixture", OTHER_FAMILIES)
def test_every_saved_weight_is_loaded(fixture: str, request: pytest.FixtureRequest) -> None:
    """The model class vlcli loads is the checkpoint's own: a mixture of experts' experts would not
    load into the dense class (transformers would leave them out and make the dense MLP up at
    random, with a warning vlcli silences)."""
    from vlcli.backends.transformers.loading import model_class

    path = request.getfixturevalue(fixture)
    family = resolve_model(str(path)).family
    _, info = model_class(family).from_pretrained(str(path), output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())


@pytest.mark.parametrize("fixture", OTHER_FAMILIES)
def test_other_families_load_and_answer(
    fixture: str, request: pytest.FixtureRequest, tiny_clip: str, tiny_image: str
) -> None:
    path = request.getfixturevalue(fixture)
    runner = TransformersBackend(str(path), device="cpu", warn=_quiet)
    video, image = _video_plan(runner, tiny_clip), _image_plan(runner, tiny_image)
    pieces: list[str] = []
    answer = ask_media(
        runner,
        [(tiny_clip, video), (tiny_image, image)],
        QUESTION,
        max_new_tokens=5,
        on_text=pieces.append,
    )
    assert isinstance(answer.text, str) and "".join(pieces) == answer.text
    assert answer.visual_tokens == video.visual_tokens + image.visual_tokens
    assert 1 <= answer.generated_tokens <= 5
    hooked = getattr(runner.model.model.get_rope_index, "vlcli_reference", False)
    assert hooked == (runner.family.name == "qwen2_vl")  # Qwen3-VL keeps transformers' positions
    if runner.family.time_encoding.states_source_seconds:  # text before each temporal patch
        inputs, _ = runner.inputs_for([(tiny_clip, video)], QUESTION)
        text = runner.processor.tokenizer.decode(inputs["input_ids"][0])
        assert text.count(" seconds>") == video.grid_thw[0]
    else:
        assert "second_per_grid_ts" not in runner.inputs_for([(tiny_clip, video)], QUESTION)[0]


# ---------------------------------------------------------------- finding the model


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="--model PATH") as info:
        TransformersBackend(str(tmp_path / "no-such-model"), warn=_quiet)
    assert info.value.status == ExitStatus.MODEL and "\n" not in str(info.value)


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="config.json"):
        TransformersBackend(str(tmp_path), warn=_quiet)


def test_uncached_hub_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="--model PATH") as info:
        TransformersBackend("Qwen/Qwen2.5-VL-7B-Instruct", warn=_quiet)
    assert "\n" not in str(info.value)


def test_hub_id_from_the_local_cache(
    tiny_qwen25_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "hub" / "models--tiny-org--Tiny-Qwen2.5-VL" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_qwen25_path, snapshot)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    runner = TransformersBackend("tiny-org/Tiny-Qwen2.5-VL", device="cpu", warn=_quiet)
    assert runner.spec.model == "tiny-org/Tiny-Qwen2.5-VL" and runner.spec.local_path == str(
        snapshot
    )
    assert runner.family.name == "qwen2_5_vl"


def test_bad_options(tiny_qwen25_path: Path) -> None:
    with pytest.raises(UsageError, match="--dtype"):
        TransformersBackend(str(tiny_qwen25_path), dtype="int3", warn=_quiet)
    with pytest.raises(UsageError, match="--attn"):
        TransformersBackend(str(tiny_qwen25_path), attn="magic", warn=_quiet)
    with pytest.raises(UsageError, match="--device"):
        TransformersBackend(str(tiny_qwen25_path), device="nonsense", warn=_quiet)


@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "cuda:7"])
def test_a_device_that_is_not_here_names_those_that_are(
    tiny_qwen25_path: Path, device: str
) -> None:
    from vlcli.backends.transformers.device import devices_here

    with pytest.raises(UsageError, match=f"--device {device}") as caught:
        TransformersBackend(str(tiny_qwen25_path), device=device, warn=_quiet)
    assert ", ".join(devices_here()) in caught.value.message and "cpu" in caught.value.message


def test_eager_attention(tiny_qwen25_path: Path) -> None:
    runner = TransformersBackend(str(tiny_qwen25_path), device="cpu", attn="eager", warn=_quiet)
    assert runner.model.config._attn_implementation == "eager"


@pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed"
)
def test_flash_attention_needs_its_package(tiny_qwen25_path: Path) -> None:
    with pytest.raises(VlcliError, match="flash-attn") as info:
        TransformersBackend(str(tiny_qwen25_path), attn="flash_attention_2", warn=_quiet)
    assert info.value.status == ExitStatus.MISSING_DEPENDENCY


def test_the_answer_reports_the_positions_the_model_was_given(
    qwen25_runner: TransformersBackend, tiny_clip: str
) -> None:
    """The axis is read back from the prefill, not recomputed: the reference's positions, with
    the text after the video one past the video's largest position on any axis."""
    plan = _video_plan(qwen25_runner, tiny_clip)
    answer = ask_media(qwen25_runner, [(tiny_clip, plan)], QUESTION, max_new_tokens=2)
    (axis,) = answer.axes
    assert axis is not None and answer.notes == ()
    assert axis.engine == "reference" and axis.positions == plan.temporal_positions
    _t, h, w = plan.grid_thw
    assert axis.text_after == max(plan.temporal_positions[-1], h // 2 - 1, w // 2 - 1) + 1
    assert axis.patch_times_s == plan.patch_times_s


def test_positions_that_cannot_be_read_back_leave_the_times_unmapped(
    qwen25_runner: TransformersBackend, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlcli.backends.transformers.positions import recorded_video_axes
    from vlcli.run.prompt import map_answer_times

    plan = _video_plan(qwen25_runner, tiny_clip)
    inputs, _ = qwen25_runner.inputs_for([(tiny_clip, plan)], QUESTION)
    # a record of another prompt is not taken for this one
    other = inputs["input_ids"].clone()
    other[0, 0] += 1
    monkeypatch.setattr(
        qwen25_runner.model.model, "vlcli_last_positions", (other, torch.zeros(3, *other.shape))
    )
    assert recorded_video_axes(qwen25_runner.model, inputs["input_ids"], [plan.grid_thw], 2) is None
    monkeypatch.setattr(
        "vlcli.backends.transformers.axes.recorded_video_axes", lambda *a, **k: None
    )
    answer = ask_media(qwen25_runner, [(tiny_clip, plan)], QUESTION, max_new_tokens=2)
    assert answer.axes == (None,) and "left as the model stated them" in answer.notes[0]
    (span,) = map_answer_times("It happens at 1.5 seconds.", [plan], answer.axes)
    assert not span.mapped and span.start_s == 1.5


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_corrupt_and_cut_weights_are_model_errors(tiny_qwen25_path: Path, tmp_path: Path) -> None:
    """Found before anything is loaded, with the cause (status 4, not a bug)."""
    from vlcli.models.locate import check_weights_files, locate_spec

    assert check_weights_files(tiny_qwen25_path) is None
    cut = _copy_model(tiny_qwen25_path, tmp_path / "cut")
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    garbage = _copy_model(tiny_qwen25_path, tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"\0" * 100)
    empty = _copy_model(tiny_qwen25_path, tmp_path / "no-weights")
    (empty / "model.safetensors").unlink()
    for folder, cause in (
        (cut, "model.safetensors is corrupt or truncated"),
        (garbage, "its header is not valid JSON"),
        (empty, "no weights in safetensors form"),
    ):
        with pytest.raises(ModelError, match=cause) as caught:
            locate_spec(str(folder))
        assert caught.value.status == ExitStatus.MODEL


def test_a_checkpoint_of_another_architecture_is_refused(
    tiny_qwen25_path: Path, tmp_path: Path
) -> None:
    """Even in a folder whose name says Qwen2.5-VL, config.json decides (budget and ask)."""
    import json

    from vlcli.models.families import resolve_model

    folder = _copy_model(tiny_qwen25_path, tmp_path / "tiny-Qwen2.5-VL-but-llama")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    with pytest.raises(ModelError, match="not a Qwen2-VL, Qwen2.5-VL, Qwen3-VL .* checkpoint"):
        resolve_model(str(folder))
    with pytest.raises(ModelError, match="model_type 'llama'"):
        TransformersBackend(str(folder), device="cpu", warn=_quiet)


def test_the_cache_follows_refs_main(
    tiny_qwen25_path: Path, tiny_qwen2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot refs/main names, not the newest one; the cache named by HF_HOME."""
    import os

    from vlcli.models.families import hf_cache_snapshot

    repo = tmp_path / "home" / "hub" / "models--tiny-org--Tiny-VL"
    main = repo / "snapshots" / "1111aaaa"
    newer = repo / "snapshots" / "2222bbbb"
    shutil.copytree(tiny_qwen25_path, main)
    shutil.copytree(tiny_qwen2_path, newer)
    os.utime(main / "config.json", (1, 1))
    os.utime(main, (1, 1))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1111aaaa")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hf_cache_snapshot("tiny-org/Tiny-VL") == main
    (repo / "refs" / "main").write_text("2222bbbb")
    assert hf_cache_snapshot("tiny-org/Tiny-VL") == newer
    assert hf_cache_snapshot("tiny-org/Not-There") is None
