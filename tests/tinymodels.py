"""Tiny Qwen2-VL, Qwen2.5-VL, Qwen3-VL and Qwen3.5 (both dense and MoE) models with random weights,
saved like real checkpoints.

Nothing is downloaded: the configs are written here, the weights are random (seeded), and the
tokenizer is a small byte-level BPE trained on a few sentences, carrying the real Qwen special
tokens (``<|im_start|>``, ``<|vision_start|>``, ``<|video_pad|>``...). The config's token ids
are set to the ids this tokenizer gives those tokens, so the model, the processor and vlcli agree.

The chat templates are written from the released checkpoints' behaviour: Qwen2-VL and Qwen2.5-VL
add the default system prompt "You are a helpful assistant." when none is given, and render a
video item as ``<|vision_start|><|video_pad|><|vision_end|>`` and an image item as
``<|vision_start|><|image_pad|><|vision_end|>``; Qwen3-VL adds no default system prompt.

Qwen3.5's chat template is the released one, kept as a file: tests/data/qwen3_5/ (its README
says where it was read). Its language model is a hybrid (three Gated DeltaNet layers, then a
full-attention layer) whose rotary part is a quarter of the head (``partial_rotary_factor``, as
released), so the mRoPE sections add up to half of that part.

``save_tiny_model(family, folder)`` writes config.json, model.safetensors, generation_config.json,
the tokenizer files, preprocessor_config.json, video_preprocessor_config.json and the chat
template, as ``save_pretrained`` does for a real checkpoint. It takes about a second.

``head_dim`` (default 16) changes only the language model's attention head size: vLLM's CPU
attention kernels take head sizes that are multiples of 32 (16 stops its engine at start-up), so
the vLLM tests build their models with ``head_dim=32``. Qwen2-VL and Qwen2.5-VL derive the head
size from the hidden size, so fewer heads are used there; Qwen3-VL states it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Dimensions (small enough to build, save and run on a CPU in well under a second).
TEXT_HIDDEN = 64
TEXT_LAYERS = 2
TEXT_HEADS = 4
TEXT_KV_HEADS = 2
HEAD_DIM = TEXT_HIDDEN // TEXT_HEADS  # 16: mRoPE sections must add up to HEAD_DIM // 2 = 8
MROPE_SECTION = [2, 3, 3]  # the released checkpoints use [16, 24, 24] for head_dim 128
VISION_DEPTH = 2
VISION_HIDDEN = 32
VISION_HEADS = 2
TOKENS_PER_SECOND = 2  # as the released Qwen2.5-VL checkpoints (the config class default is 4)
SEED = 1234

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

DEFAULT_SYSTEM = "You are a helpful assistant."

# The Qwen2-VL / Qwen2.5-VL chat template.
QWEN2_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL (instruct): the same markup, no default system prompt.
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "You are a helpful assistant.",
    "Describe this video. What happens in the clip, and when does it happen?",
    "The person opens the door at 12.5 seconds and leaves at 30 seconds.",
    "From 00:01:05 to 00:01:20 a red car passes; a dog barks at 3.0 seconds.",
    "Answer with the start and end time in seconds. Where is the ball?",
    "system user assistant question answer image picture frame video clip time",
    "The quick brown fox jumps over the lazy dog, 0 1 2 3 4 5 6 7 8 9.",
    "<12.3 seconds> <0.5 seconds> seconds minutes hours: a caption per scene.",
]

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")
QWEN3_5_FAMILIES = ("qwen3_5", "qwen3_5_moe")
# The released Qwen3.5 chat template (tests/data/qwen3_5/README.md says where it was read).
QWEN3_5_CHAT_TEMPLATE = (
    Path(__file__).parent / "data" / "qwen3_5" / "chat_template.jinja"
).read_text(encoding="utf-8")
# Qwen3.5's tokenizer also knows the thinking markers (added tokens, not special ones).
THINK_TOKENS = ["<think>", "</think>"]
QWEN3_5_LAYERS = ["linear_attention"] * 3 + ["full_attention"]


def build_tokenizer(vocab_size: int = 600, family: str = "qwen2_5_vl") -> Any:
    """A Qwen2Tokenizer (byte-level BPE, the Qwen pre-tokenizer) with the real special tokens;
    for Qwen3.5 its own tokenizer class (NFC, its pre-tokenizer) with the thinking markers too."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    vocab = dict(bpe.get_vocab())
    for token in SPECIAL_TOKENS:  # after the BPE vocabulary, in the released order
        vocab[token] = len(vocab)
    model_state = json.loads(bpe.to_str())["model"]
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_state["merges"]
    ]
    cls: Any = Qwen2Tokenizer
    if family in QWEN3_5_FAMILIES:
        from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer as cls
    tok = cls(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    if family in QWEN3_5_FAMILIES:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    return tok


def _token_ids(tok: Any) -> dict[str, int]:
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def mrope_section(head_dim: int) -> list[int]:
    """Temporal, height and width rotary sections adding up to ``head_dim // 2``, in the released
    checkpoints' 16:24:24 proportion ([2, 3, 3] for 16, [4, 6, 6] for 32, [16, 24, 24] for 128)."""
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]


def _rope(theta: float, sections: list[int], **extra: Any) -> dict[str, Any]:
    """The text config's multimodal rotary parameters (``extra``: Qwen3's interleaving, Qwen3.5's
    partial rotation)."""
    return {"rope_type": "default", "rope_theta": theta, "mrope_section": sections, **extra}


def _vision(patch_size: int, **extra: Any) -> dict[str, Any]:
    """The tiny vision tower shared by Qwen2.5-VL, Qwen3-VL and Qwen3.5 (``extra``: each one's own
    keys); its output is the text width."""
    return dict(
        depth=VISION_DEPTH,
        hidden_size=VISION_HIDDEN,
        intermediate_size=2 * VISION_HIDDEN,
        num_heads=VISION_HEADS,
        out_hidden_size=TEXT_HIDDEN,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        **extra,
    )


def build_config(
    family: str, tok: Any, head_dim: int = HEAD_DIM, linear_head_dim: int = HEAD_DIM
) -> Any:
    ids = _token_ids(tok)
    vocab = ((len(tok) + 63) // 64) * 64
    heads, kv_heads = TEXT_HEADS, TEXT_KV_HEADS
    if family in ("qwen2_vl", "qwen2_5_vl") and head_dim != HEAD_DIM:  # head size = hidden / heads
        heads = TEXT_HIDDEN // head_dim
        kv_heads = max(1, heads // 2)
    sections = MROPE_SECTION if head_dim == HEAD_DIM else mrope_section(head_dim)
    text = dict(
        vocab_size=vocab,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=2 * TEXT_HIDDEN,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32768,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )
    token_ids = {
        k: ids[k]
        for k in (
            "image_token_id",
            "video_token_id",
            "vision_start_token_id",
            "vision_end_token_id",
        )
    }
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        return Qwen2_5_VLConfig(
            text_config=dict(
                text,
                rope_parameters=_rope(1000000.0, sections),
            ),
            vision_config=_vision(
                14, window_size=56, fullatt_block_indexes=[1], tokens_per_second=TOKENS_PER_SECOND
            ),
            tie_word_embeddings=True,
            **token_ids,
        )
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig

        return Qwen2VLConfig(
            text_config=dict(
                text,
                rope_parameters=_rope(1000000.0, sections),
            ),
            vision_config=dict(
                depth=VISION_DEPTH,
                embed_dim=VISION_HIDDEN,
                hidden_size=TEXT_HIDDEN,
                mlp_ratio=2,
                num_heads=VISION_HEADS,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
            ),
            tie_word_embeddings=True,
            **token_ids,
        )
    if family in ("qwen3_vl", "qwen3_vl_moe"):
        from transformers import Qwen3VLConfig, Qwen3VLMoeConfig

        experts = (
            dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=TEXT_HIDDEN // 2)
            if family == "qwen3_vl_moe"
            else {}
        )
        return (Qwen3VLMoeConfig if experts else Qwen3VLConfig)(
            text_config=dict(
                text,
                **experts,
                head_dim=head_dim,
                rope_parameters=_rope(5000000.0, sections, mrope_interleaved=True),
            ),
            vision_config=_vision(16, num_position_embeddings=64, deepstack_visual_indexes=[0]),
            tie_word_embeddings=True,
            **token_ids,
        )
    if family in QWEN3_5_FAMILIES:
        return _qwen3_5_config(family, text, token_ids, head_dim, linear_head_dim)
    raise ValueError(f"unknown family {family!r}")


def _qwen3_5_config(
    family: str, text: dict[str, Any], token_ids: dict[str, int], head_dim: int, linear_head_dim: int
) -> Any:
    """Qwen3.5: four layers (three linear, one full), a quarter of the head rotated, as released;
    the MoE variant with 4 experts of which 2 per token and a shared expert. ``linear_head_dim``:
    the linear layers' key and value head size (vLLM's CPU Gated DeltaNet takes only 128)."""
    from transformers import Qwen3_5Config, Qwen3_5MoeConfig

    head_dim = max(head_dim, 2 * HEAD_DIM)  # a quarter of 16 leaves too few for three sections
    linear = dict(
        layer_types=QWEN3_5_LAYERS,
        num_hidden_layers=len(QWEN3_5_LAYERS),
        head_dim=head_dim,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=linear_head_dim,
        linear_value_head_dim=linear_head_dim,
        linear_conv_kernel_dim=4,
        rope_parameters=_rope(
            10000000.0, mrope_section(head_dim // 4), partial_rotary_factor=0.25,
            mrope_interleaved=True,
        ),
    )
    if family == "qwen3_5_moe":
        text = {k: v for k, v in text.items() if k != "intermediate_size"}
        linear.update(
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=TEXT_HIDDEN // 2,
            shared_expert_intermediate_size=TEXT_HIDDEN // 2,
        )
    cls = Qwen3_5MoeConfig if family == "qwen3_5_moe" else Qwen3_5Config
    return cls(
        text_config=dict(text, **linear),
        vision_config=_vision(16, num_position_embeddings=64),
        tie_word_embeddings=True,
        **token_ids,
    )


def build_processor(family: str, tok: Any) -> Any:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    if family in ("qwen2_vl", "qwen2_5_vl"):
        from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor

        # The released checkpoints have one preprocessor_config.json (min 3136, max 12845056
        # pixels) that both the image and the video processor are built from.
        limits = {"min_pixels": 3136, "max_pixels": 12845056}
        image = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, **limits)
        video = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, **limits)
        cls = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
        return cls(
            image_processor=image,
            tokenizer=tok,
            video_processor=video,
            chat_template=QWEN2_CHAT_TEMPLATE,
        )
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    half = [0.5, 0.5, 0.5]
    image = Qwen2VLImageProcessor(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=half,
        image_std=half,
        size={"shortest_edge": 65536, "longest_edge": 16777216},
    )
    video = Qwen3VLVideoProcessor(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=half,
        image_std=half,
        size={"shortest_edge": 4096, "longest_edge": 25165824},
    )
    return Qwen3VLProcessor(
        image_processor=image,
        tokenizer=tok,
        video_processor=video,
        chat_template=QWEN3_5_CHAT_TEMPLATE if family in QWEN3_5_FAMILIES else QWEN3_CHAT_TEMPLATE,
    )


def model_class(family: str) -> Any:
    import transformers

    return {
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
        "qwen3_vl_moe": transformers.Qwen3VLMoeForConditionalGeneration,
        "qwen3_5": transformers.Qwen3_5ForConditionalGeneration,
        "qwen3_5_moe": transformers.Qwen3_5MoeForConditionalGeneration,
    }[family]


def save_tiny_model(
    family: str, folder: str | Path, *, head_dim: int = HEAD_DIM, linear_head_dim: int = HEAD_DIM
) -> Path:
    """Build the tiny ``family`` model and its processor and save both into ``folder``.

    ``head_dim`` is the language model's attention head size (see the module's docstring),
    ``linear_head_dim`` Qwen3.5's linear-attention head size."""
    import torch
    from transformers import GenerationConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(family=family)
    config = build_config(family, tok, head_dim=head_dim, linear_head_dim=linear_head_dim)
    torch.manual_seed(SEED)
    model = model_class(family)(config).eval()
    ids = _token_ids(tok)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token_id"],
        eos_token_id=[ids["eos_token_id"], ids["pad_token_id"]],
        pad_token_id=ids["pad_token_id"],
        do_sample=False,
    )
    model.save_pretrained(folder, safe_serialization=True)
    save_processor_like_release(build_processor(family, tok), folder, family)
    return folder


def save_processor_like_release(processor: Any, folder: Path, family: str) -> None:
    """The processor files laid out as the released checkpoints have them.

    Qwen2-VL and Qwen2.5-VL ship one ``preprocessor_config.json`` (with ``min_pixels`` and
    ``max_pixels``) from which transformers builds both the image and the video processor;
    Qwen3-VL and Qwen3.5 ship a ``video_preprocessor_config.json`` too. The chat template is in
    ``chat_template.json`` (Qwen3.5: ``chat_template.jinja``). (``processor.save_pretrained``
    would write one ``processor_config.json`` instead, which no released checkpoint has.)
    """
    processor.tokenizer.save_pretrained(folder)
    qwen3 = family in ("qwen3_vl", "qwen3_vl_moe") or family in QWEN3_5_FAMILIES
    image = processor.image_processor.to_dict()
    image["processor_class"] = type(processor).__name__
    if not qwen3:
        image["min_pixels"] = image["size"]["shortest_edge"]
        image["max_pixels"] = image["size"]["longest_edge"]
    (folder / "preprocessor_config.json").write_text(json.dumps(image, indent=2) + "\n")
    if qwen3:
        video = processor.video_processor.to_dict()
        video["processor_class"] = type(processor).__name__
        (folder / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2) + "\n")
    for stale in ("chat_template.jinja", "chat_template.json", "processor_config.json"):
        (folder / stale).unlink(missing_ok=True)
    if family in QWEN3_5_FAMILIES:
        (folder / "chat_template.jinja").write_text(processor.chat_template, encoding="utf-8")
    else:
        template = {"chat_template": processor.chat_template}
        (folder / "chat_template.json").write_text(json.dumps(template, indent=2) + "\n")
