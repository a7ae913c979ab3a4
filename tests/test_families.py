"""One home for family behaviour: every family declares everything that differs between
families (vlcli/models/families.py), and no other module tells families apart by a name or an
encoding string (the project rule that makes adding a family one entry and its tests)."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import vlcli
from vlcli.models.families import (
    FAMILIES,
    QWEN2_5_VL,
    QWEN3_5,
    QWEN3_5_MOE,
    QWEN3_VL_MOE,
    Coordinates,
    Family,
    TimeEncoding,
    family_from_name,
    family_of_model_type,
    resolve_model,
)

PACKAGE = Path(vlcli.__file__).parent
MODELS = PACKAGE / "models"
# The only fields a family may leave to their defaults: the same in every family so far.
SHARED = {"spatial_merge_size", "temporal_patch_size", "processor_video_cap_pixels_per_frame"}
# Attributes holding a family's declared enums: ask their properties, never compare them.
ENUM_FIELDS = ("time_encoding", "encoding", "coordinates")


def _family_words() -> set[str]:
    words = {e.value for e in TimeEncoding} | {c.value for c in Coordinates}
    for family in FAMILIES:
        words |= {family.name, *family.model_types}
    return words


def family_checks(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Where ``tree`` names a family or an encoding by its string, or compares a declared enum."""
    words = _family_words()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words:
            yield node.lineno, f"the string {node.value!r}"
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Attribute) and side.attr in ENUM_FIELDS:
                    yield node.lineno, f"a comparison of .{side.attr}"


def test_the_check_sees_name_and_encoding_comparisons() -> None:
    assert list(family_checks(ast.parse('if family.name == "qwen3_vl": pass')))
    assert list(family_checks(ast.parse('x = {"qwen2_5_vl": 1}')))
    assert list(family_checks(ast.parse("ok = axis.encoding != other")))
    assert list(family_checks(ast.parse('ok = e == "absolute-mrope"')))
    assert not list(family_checks(ast.parse("ok = family.time_encoding.positions_are_seconds")))


def test_only_models_tells_families_apart() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if MODELS in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        found += [f"{where}:{line}: {what}" for line, what in family_checks(tree)]
    assert found == [], "ask the family (vlcli/models/families.py) instead:\n" + "\n".join(found)


def test_a_family_leaves_nothing_to_defaults() -> None:
    """Every field but the shared ones has no default: a new family must state each one."""
    defaulted = {
        f.name
        for f in dataclasses.fields(Family)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    assert defaulted == SHARED


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_declares_every_behaviour(family: Family) -> None:
    import transformers

    assert isinstance(family.time_encoding, TimeEncoding)
    assert isinstance(family.coordinates, Coordinates)
    encoding = family.time_encoding
    # the declarations agree with each other
    assert (family.tokens_per_second is not None) == encoding.positions_are_seconds
    assert (family.timestamp_tokens > 0) == encoding.states_source_seconds
    assert not (family.reference_positions and encoding.states_source_seconds)
    assert family.factor == family.patch_size * family.spatial_merge_size
    assert family.processor_video_min_pixels <= family.processor_video_max_pixels
    assert family.processor_image_min_pixels <= family.processor_image_max_pixels
    # it is found by every way vlcli finds a family
    assert family.name in family.model_types
    assert all(family_of_model_type(t) is family for t in family.model_types)
    assert family.name_patterns
    assert all(family_from_name(f"Qwen/{p}-7B-Instruct") is family for p in family.name_patterns)
    for key, dims in family.presets:
        spec = resolve_model(f"Qwen/{key}{family.hub_suffix}")
        assert (spec.family, spec.dims, spec.source) == (family, dims, "built-in preset")
    assert hasattr(transformers, family.transformers_class)


def test_coordinates_each_family_answers_in() -> None:
    """Qwen2.5-VL states absolute pixels of its resized input; Qwen2-VL and Qwen3-VL 0..1000."""
    for family in FAMILIES:
        expected = Coordinates.RESIZED_PIXELS if family is QWEN2_5_VL else Coordinates.RELATIVE_1000
        assert family.coordinates is expected


@pytest.mark.parametrize(
    ("model_type", "family", "cls"),
    [
        ("qwen3_vl_moe", QWEN3_VL_MOE, "Qwen3VLMoeForConditionalGeneration"),
        ("qwen3_5", QWEN3_5, "Qwen3_5ForConditionalGeneration"),
        ("qwen3_5_moe", QWEN3_5_MOE, "Qwen3_5MoeForConditionalGeneration"),
    ],
)
def test_a_folder_is_known_by_its_model_type(
    model_type: str, family: Family, cls: str, tmp_path: Path
) -> None:
    """config.json's model_type decides, whatever the folder is called, and the model class is
    the one that holds the checkpoint's weights (a mixture of experts has its own)."""
    folder = tmp_path / "some-model"
    folder.mkdir()
    (folder / "config.json").write_text(f'{{"model_type": "{model_type}"}}')
    spec = resolve_model(str(folder))
    assert spec.family.name == family.name and spec.family.transformers_class == cls
    assert (spec.family.factor, spec.family.time_encoding) == (32, TimeEncoding.TEXT_TIMESTAMPS)


def test_qwen3_5_presets_count_what_is_resident_and_what_a_token_uses() -> None:
    """A mixture of experts keeps every expert in memory; a token uses 8 of 256 and the shared one."""
    dense = resolve_model("Qwen/Qwen3.5-9B").dims
    moe = resolve_model("Qwen/Qwen3.6-35B-A3B").dims
    assert dense is not None and moe is not None
    assert dense.full_attention_layers == 8 and dense.linear_layers == 24
    assert round(dense.parameter_count(16, 2, 2) / 1e9, 1) == 9.4
    total, active = moe.parameter_count(16, 2, 2), moe.parameter_count(16, 2, 2, active=True)
    assert round(total / 1e9) == 35 and round(active / 1e9, 1) == 3.9
    assert resolve_model("Qwen/Qwen3.5-9B").family.template_thinking
    vl = resolve_model("Qwen/Qwen3-VL-30B-A3B-Instruct")
    assert vl.family is QWEN3_VL_MOE and vl.dims is not None and vl.dims.linear_layers == 0
    assert round(vl.dims.parameter_count(16, 2, 2) / 1e9) == 31  # 30B-A3B: all 128 experts
    assert round(vl.dims.parameter_count(16, 2, 2, active=True) / 1e9, 1) == 3.8


@pytest.mark.parametrize("family", ["qwen3_5", "qwen3_5_moe"])
def test_a_qwen3_5_language_model_is_counted_exactly(family: str) -> None:
    """The hybrid layers (gated attention, Gated DeltaNet) and the experts, counted from the
    shapes, equal transformers' own count of the language model built on the meta device."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from tinymodels import build_config, build_tokenizer, model_class

    config = build_config(family, build_tokenizer(family=family))
    with torch.device("meta"):
        model = model_class(family)(config)
    counted = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    folder = Path(__file__).parent  # any folder: the dims come from the config dict
    from vlcli.models.families import _dims_from_config

    dims = _dims_from_config(config.to_dict())
    assert dims is not None and dims.linear_layers == 3, folder
    ours = dims.parameter_count(16, 2, 2) - dims._vision_parameters(16, 2, 2)
    assert ours == counted - vision


def test_a_plan_for_another_family_is_refused_by_either_engine() -> None:
    """A plan holds one family's sizes, times and prompt: a model of another family is not
    asked with it (both engines, before any file is read or any processor is used)."""
    from vlcli.backends import Prompt
    from vlcli.backends.transformers.model_inputs import build_inputs
    from vlcli.backends.vllm.request import _media_urls
    from vlcli.errors import UsageError
    from vlcli.planning.plan import SamplingOptions, plan_image

    media = [("a.png", plan_image(641, 359, SamplingOptions(), QWEN2_5_VL))]
    said = "a.png: planned for qwen2_5_vl, but the model is qwen3_5"
    with pytest.raises(UsageError, match=said):
        build_inputs(None, QWEN3_5, media, "Where?")
    with pytest.raises(UsageError, match=said):
        _media_urls(Prompt(media, "Where?"), QWEN3_5, "png", None)
