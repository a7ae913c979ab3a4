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
        spec = resolve_model(f"Qwen/{key}-Instruct")
        assert (spec.family, spec.dims, spec.source) == (family, dims, "built-in preset")
    assert hasattr(transformers, family.transformers_class)


def test_coordinates_each_family_answers_in() -> None:
    """Qwen2.5-VL states absolute pixels of its resized input; Qwen2-VL and Qwen3-VL 0..1000."""
    for family in FAMILIES:
        expected = Coordinates.RESIZED_PIXELS if family is QWEN2_5_VL else Coordinates.RELATIVE_1000
        assert family.coordinates is expected
