"""Small VLMs from scratch: randomly initialized image-text-to-text checkpoints of real architectures.

Why in training: meta-training can start from nothing (the learning benchmark does: a model too small to
download, with the concept world's words in its vocabulary). :func:`build_scratch_vlm` makes a checkpoint
of the real architecture (Idefics3 = SmolVLM v1, SmolVLM v2, Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision) with
a few layers, a byte-level BPE tokenizer trained on the spot (so any text, JSON included, encodes), the
family's special tokens and chat template, and the family's processor. The folder loads back through
``AutoModelForImageTextToText`` and ``AutoProcessor`` (or :func:`slc.agent.loading.load_processor` where
torchvision is missing), exactly like a hub checkpoint. The same builder makes the tiny offline models of
the tests (:func:`slc.testing.build_tiny_vlm`).

Guarantees callers rely on: ``"Yes"``, ``"No"``, ``" Yes"`` and ``" No"`` are single tokens (the detector
reads Yes/No probabilities, see :func:`slc.agent.recognition.yes_no_token_ids`); the same family, seed and
options give byte-identical weights and vocabulary; a folder is either complete or absent (built in a
temporary sibling and renamed into place).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from transformers import BaseImageProcessor, PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

SCRATCH_VLM_FAMILIES: tuple[str, ...] = ("idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "llava_onevision")
Family = Literal["idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "llava_onevision"]

MARKER_FILE = "slc_tiny_vlm.json"
BUILDER_VERSION = 2  # bump when the built checkpoint changes, so cached folders are rebuilt


class ScratchVLMOptions(BaseModel):
    """Sizes of a scratch checkpoint (tiny by default); pass any of these as keyword overrides to
    :func:`build_scratch_vlm`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(default=1024, ge=400, le=32000, description="Target size of the trained BPE vocabulary.")
    text_hidden_size: int = Field(default=64, ge=16, description="Language model width (multiple of 4 heads).")
    text_layers: int = Field(default=2, ge=1)
    text_heads: int = Field(default=4, ge=1)
    text_kv_heads: int = Field(default=2, ge=1)
    vision_hidden_size: int = Field(default=64, ge=16)
    vision_layers: int = Field(default=2, ge=1)
    vision_heads: int = Field(default=4, ge=1)
    image_size: int = Field(default=64, ge=32, le=448, description="Side in pixels every image is resized to.")
    patch_size: int = Field(default=8, ge=2, description="Vision patch side in pixels.")
    extra_words: tuple[str, ...] = Field(
        default=(),
        description="Words added to the tokenizer corpus so each encodes as one token (with and without a "
        "leading space), e.g. the concept world's colours/shapes/patterns for the learning benchmark.",
    )


# ----------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------

# Words of the prompts the project sends (detection, description, JSON answers) so that they encode in a
# few tokens; the BPE alphabet covers every byte, so anything else still encodes.
_PROMPT_WORDS = (
    "image photo picture concept concepts present absent location position left right top bottom center "
    "middle upper lower corner background foreground yes no Yes No YES NO true false null answer question "
    "describe description detect detection identify who what where which is are the a an in of on at to and "
    "or with this that there here it its person dog cat object scene user assistant system name names "
    "confidence evidence reason reasoning relative absolute near next behind front visible shown show looks "
    "like color colour red green blue black white brown small large big my your our please only one word "
    "JSON json output format list bbox box candidates candidate memory tree attribute attributes category "
    "Picture Image Answer Question Describe Is Does Do Where Which"
).split()
_JSON_SNIPPETS = (
    '{"present": true, "confidence": 0.9, "location": "top left", "evidence": "red collar"}',
    '{"present": false, "confidence": 0.1, "location": null, "evidence": ""}',
    '[{"name": "<bo>", "present": true}, {"name": "<mochi>", "present": false}]',
    '{"answer": "Yes", "relative": "left of <bo>", "absolute": [0.1, 0.2, 0.5, 0.75]}',
    "{} [] : , \" ' 0 1 2 3 4 5 6 7 8 9 0.5 1.0 -1 ( ) ? ! . ; _ - / < > <name> <sks> <bo> <concept>",
)
_SENTENCES = (
    "Is <{n}> present in this image? Answer Yes or No.",
    "Is <{n}> in the photo? Yes",
    "Is <{n}> in the photo? No",
    "Where is <{n}> in the image? <{n}> is at the {p} of the image.",
    "Describe <{n}>. <{n}> is a {w} {o} with a {c} {a}.",
    "Answer with Yes or No. Yes. No. Yes, it is. No, it is not.",
    "Which concepts are present? Output JSON with name, present, confidence, location and evidence.",
)
_NAMES = ("bo", "sks", "mochi", "name", "concept", "toy", "kitty", "rex", "luna", "max")
_POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center", "left", "right", "top", "bottom")
_FILLERS = ("small", "large", "brown", "white", "black", "fluffy", "red", "blue")
_OBJECTS = ("dog", "cat", "person", "toy", "mug", "bag", "car", "plant")


def _corpus(extra_words: tuple[str, ...] = ()) -> Iterator[str]:
    """A deterministic corpus: prompt words, JSON, and many Yes/No answers (so both merge into one token).

    ``extra_words`` are repeated often enough (after a space, after ": " and at line starts) that the BPE
    merges each into a single token.
    """
    for _ in range(40 if extra_words else 0):
        yield " ".join(extra_words)
        yield "\n".join(extra_words)
        yield " ".join(f"{w}: {w}; {w}." for w in extra_words)
    for _ in range(3):
        yield " ".join(_PROMPT_WORDS)
        yield from _JSON_SNIPPETS
    for i, name in enumerate(_NAMES):
        for j, template in enumerate(_SENTENCES):
            yield template.format(
                n=name,
                p=_POSITIONS[(i + j) % len(_POSITIONS)],
                w=_FILLERS[(i * 3 + j) % len(_FILLERS)],
                o=_OBJECTS[(i + 2 * j) % len(_OBJECTS)],
                c=_FILLERS[(i + j) % len(_FILLERS)],
                a="collar" if j % 2 else "hat",
            )
    for _ in range(50):
        yield "Yes No Yes No yes no\nYes\nNo\n Yes\n No"


def _train_tokenizer(
    special_tokens: list[str], vocab_size: int, extra_words: tuple[str, ...] = (), **named_specials: str
) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on :func:`_corpus`, wrapped in PreTrainedTokenizerFast.

    ``special_tokens`` get the lowest ids (in order); ``named_specials`` (bos_token, eos_token, pad_token,
    unk_token) name some of them for transformers.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(extra_words), trainer)
    named = set(named_specials.values())
    extra = [t for t in special_tokens if t not in named]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        additional_special_tokens=extra,
        clean_up_tokenization_spaces=False,
        **named_specials,
    )
    for word in ("Yes", "No", " Yes", " No"):
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:  # a guarantee the detector relies on; fail loudly rather than build a bad model
            raise RuntimeError(f"tiny tokenizer splits {word!r} into {ids}; enlarge the Yes/No part of the corpus")
    return tokenizer


# ----------------------------------------------------------------------------------------------------------
# Chat templates (the families' own formats, accepting string or list-of-parts content)
# ----------------------------------------------------------------------------------------------------------

QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Family builders: each returns (model, processor)
# ----------------------------------------------------------------------------------------------------------


def _text_sizes(o: ScratchVLMOptions, vocab: int) -> dict[str, object]:
    """The language model's sizes, the same in every family (the special token ids are the family's)."""
    return dict(
        vocab_size=vocab,
        hidden_size=o.text_hidden_size,
        intermediate_size=o.text_hidden_size * 2,
        num_hidden_layers=o.text_layers,
        num_attention_heads=o.text_heads,
        num_key_value_heads=o.text_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )


def _vision_sizes(o: ScratchVLMOptions, patch_size: int) -> dict[str, object]:
    """A SigLIP-style vision tower's sizes (Idefics3/SmolVLM, LLaVA-OneVision)."""
    return dict(
        hidden_size=o.vision_hidden_size,
        intermediate_size=o.vision_hidden_size * 2,
        num_hidden_layers=o.vision_layers,
        num_attention_heads=o.vision_heads,
        image_size=o.image_size,
        patch_size=patch_size,
    )


def _qwen_text_config(o: ScratchVLMOptions, vocab: int, tok: PreTrainedTokenizerFast) -> dict[str, object]:
    head_dim = o.text_hidden_size // o.text_heads
    half = head_dim // 2  # mrope splits the rotary half-dim into temporal/height/width sections
    section = [half - 2 * (half // 3), half // 3, half // 3]
    return dict(
        **_text_sizes(o, vocab),
        rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0},
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
    )


def _image_processor_class(name: str) -> type[BaseImageProcessor]:
    """The standard (torchvision) image processor where torchvision exists, else its PIL twin.

    Both save the same ``image_processor_type``, so the folder is the same either way.
    """
    import transformers
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        return getattr(transformers, f"{name}Pil")
    return getattr(transformers, name)


def _qwen_image_processor(o: ScratchVLMOptions) -> BaseImageProcessor:
    pixels = o.image_size * o.image_size
    return _image_processor_class("Qwen2VLImageProcessor")(
        min_pixels=pixels // 4, max_pixels=pixels, patch_size=o.patch_size, temporal_patch_size=2, merge_size=2
    )


def _qwen_processor(family: str, image_processor: BaseImageProcessor, tokenizer: PreTrainedTokenizerFast) -> ProcessorMixin:
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

        cls = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
        video = Qwen2VLVideoProcessor(
            patch_size=image_processor.patch_size, merge_size=2, temporal_patch_size=2, size=dict(image_processor.size)
        )
        return cls(image_processor, tokenizer, video, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    from slc.agent.processors import VideolessQwen2_5_VLProcessor, VideolessQwen2VLProcessor

    cls = VideolessQwen2_5_VLProcessor if family == "qwen2_5_vl" else VideolessQwen2VLProcessor
    return cls(image_processor, tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE)


def _build_qwen(family: str, o: ScratchVLMOptions) -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig, Qwen2VLConfig

    tok = _train_tokenizer(_QWEN_SPECIALS, o.vocab_size, o.extra_words, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = _qwen_text_config(o, len(tok), tok)
    common = dict(
        text_config=text,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    if family == "qwen2_5_vl":
        vision = dict(
            depth=o.vision_layers,
            hidden_size=o.vision_hidden_size,
            intermediate_size=o.vision_hidden_size * 2,
            num_heads=o.vision_heads,
            patch_size=o.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=o.patch_size * 2 * 2,  # 2x2 merged patches per attention window
            fullatt_block_indexes=[o.vision_layers - 1],
            out_hidden_size=o.text_hidden_size,
        )
        config = Qwen2_5_VLConfig(vision_config=vision, **common)
    else:
        vision = dict(
            depth=o.vision_layers,
            embed_dim=o.vision_hidden_size,
            hidden_size=o.text_hidden_size,
            mlp_ratio=2,
            num_heads=o.vision_heads,
            patch_size=o.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        config = Qwen2VLConfig(vision_config=vision, **common)
    model = AutoModelForImageTextToText.from_config(config)
    processor = _qwen_processor(family, _qwen_image_processor(o), tok)
    return model, processor


def _build_idefics3(family: str, o: ScratchVLMOptions) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Idefics3 (SmolVLM v1 checkpoints) and SmolVLM (v2): the same layout, SmolVLM adds a video part."""
    import transformers
    from transformers import AutoModelForImageTextToText
    from transformers.utils import is_torchvision_available

    prefix = "SmolVLM" if family == "smolvlm" else "Idefics3"

    row_col = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
                "<fake_token_around_image>", "<image>", "<global-img>", *row_col]  # fmt: skip
    tok = _train_tokenizer(
        specials, o.vocab_size, o.extra_words, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        pad_token="<|im_end|>", unk_token="<|endoftext|>",
    )  # fmt: skip
    scale_factor = 2
    image_seq_len = (o.image_size // o.patch_size) ** 2 // scale_factor**2
    config = getattr(transformers, f"{prefix}Config")(
        vision_config=_vision_sizes(o, o.patch_size),
        text_config=dict(
            model_type="llama",
            **_text_sizes(o, len(tok)),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    image_processor = _image_processor_class(f"{prefix}ImageProcessor")(
        do_image_splitting=False,
        size={"longest_edge": o.image_size},
        max_image_size={"longest_edge": o.image_size},
    )
    kwargs = dict(image_seq_len=image_seq_len, chat_template=IDEFICS3_CHAT_TEMPLATE)
    if family == "idefics3":
        processor = transformers.Idefics3Processor(image_processor, tok, **kwargs)
    elif is_torchvision_available():
        video = transformers.SmolVLMVideoProcessor(
            size={"longest_edge": o.image_size}, max_image_size={"longest_edge": o.image_size}
        )
        processor = transformers.SmolVLMProcessor(image_processor, tok, video, **kwargs)
    else:
        from slc.agent.processors import VideolessSmolVLMProcessor

        processor = VideolessSmolVLMProcessor(image_processor, tok, **kwargs)
    return model, processor


def _build_llava_onevision(o: ScratchVLMOptions) -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import AutoModelForImageTextToText, LlavaOnevisionConfig
    from transformers.utils import is_torchvision_available

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = _train_tokenizer(specials, o.vocab_size, o.extra_words, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    side = o.image_size
    pinpoints = [[side, side], [side, 2 * side], [2 * side, side]]
    config = LlavaOnevisionConfig(
        # patch 2x: keeps the anyres token count small, (side/16)^2 per crop
        vision_config=dict(model_type="siglip_vision_model", **_vision_sizes(o, o.patch_size * 2)),
        text_config=dict(
            model_type="qwen2",
            **_text_sizes(o, len(tok)),
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_1",
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    image_processor = _image_processor_class("LlavaOnevisionImageProcessor")(
        size={"height": side, "width": side}, image_grid_pinpoints=pinpoints
    )
    num_image_tokens = (side // (o.patch_size * 2)) ** 2
    kwargs = dict(
        num_image_tokens=num_image_tokens,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        vision_aspect_ratio="anyres_max_1",
    )
    if is_torchvision_available():
        from transformers import LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

        video = LlavaOnevisionVideoProcessor(size={"height": side, "width": side})
        processor = LlavaOnevisionProcessor(image_processor, tok, video, **kwargs)
    else:
        from slc.agent.processors import VideolessLlavaOnevisionProcessor

        processor = VideolessLlavaOnevisionProcessor(image_processor, tok, **kwargs)
    return model, processor


# ----------------------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------------------


def _marker(family: str, seed: int, options: ScratchVLMOptions) -> dict[str, object]:
    # extra_words is left out while empty so folders built before the option existed stay valid.
    dumped = options.model_dump(exclude={"extra_words"} if not options.extra_words else None, mode="json")
    return {"builder_version": BUILDER_VERSION, "family": family, "seed": seed, "options": dumped}


_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def _is_complete(folder: Path, expected: dict[str, object]) -> bool:
    """Our marker (written last) matches and the files a loader needs are all there."""
    try:
        if json.loads((folder / MARKER_FILE).read_text()) != expected:
            return False
    except (OSError, ValueError):
        return False
    return all((folder / name).is_file() for name in _REQUIRED_FILES)


def build_scratch_vlm(family: str, out_dir: str | os.PathLike[str], seed: int = 0, **overrides: object) -> Path:
    """Build (or reuse) a random checkpoint of ``family`` in ``out_dir`` and return the folder.

    ``overrides`` are fields of :class:`ScratchVLMOptions` (e.g. ``text_layers=1, image_size=96``).
    A folder that already holds a complete build of the same family, seed and options is returned as is;
    one from another build of ours is replaced; any other non-empty folder is refused (never deleted).
    The weights are drawn from a private RNG, so the caller's torch random state is untouched.
    """
    if family not in SCRATCH_VLM_FAMILIES:
        raise ValueError(f"Unknown tiny VLM family {family!r}; choose one of {', '.join(SCRATCH_VLM_FAMILIES)}")
    options = ScratchVLMOptions(**overrides)
    if options.text_hidden_size % options.text_heads or options.text_heads % options.text_kv_heads:
        raise ValueError("text_hidden_size must divide by text_heads, and text_heads by text_kv_heads")
    out = Path(out_dir).expanduser().resolve()
    expected = _marker(family, seed, options)
    if _is_complete(out, expected):
        return out
    if out.exists() and any(out.iterdir()) and not (out / MARKER_FILE).exists():
        raise FileExistsError(f"{out} exists and is not a tiny checkpoint built by slc; choose an empty folder")

    import torch

    with building_folder(out) as tmp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family in ("idefics3", "smolvlm"):
            model, processor = _build_idefics3(family, options)
        elif family == "llava_onevision":
            model, processor = _build_llava_onevision(options)
        else:
            model, processor = _build_qwen(family, options)
        # With the usual std of 0.02 a 64-wide output head caps every logit near +-1.3, so no adapter
        # could ever make "Yes" likely (the loss floors near ln(vocab)). Scale it like a trained head.
        head = model.get_output_embeddings()
        torch.nn.init.normal_(head.weight, std=options.text_hidden_size**-0.5)
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
        model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
        with _quiet_progress():
            model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        _standardize_processor_files(tmp, processor)
        (tmp / MARKER_FILE).write_text(json.dumps(expected, indent=2))
        move_into_place(tmp, out, lambda p: _is_complete(p, expected))
    return out


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No "Writing model shards" bar for a sub-second tiny save (it floods test logs)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _standardize_processor_files(folder: Path, processor: ProcessorMixin) -> None:
    """Name the standard transformers processor class in the saved files, not our video-less stand-in.

    Why: the folder must look like any hub checkpoint, so plain ``AutoProcessor`` loads it wherever
    torchvision is installed, and :func:`slc.agent.loading.load_processor` maps it back where it is not.
    """
    from slc.agent.processors import is_videoless, standard_processor_class_name

    if not is_videoless(processor):
        return
    name = standard_processor_class_name(processor)
    for file_name in ("processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = folder / file_name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        if "processor_class" in data:
            data["processor_class"] = name
        if file_name == "processor_config.json" and "image_processor" in data and name in _VIDEO_PROCESSOR_TYPES:
            data.setdefault("video_processor", _video_section(data["image_processor"], _VIDEO_PROCESSOR_TYPES[name]))
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# The standard class's video processor, described from the image settings so that the standard processor
# (which loads a video processor wherever torchvision exists) finds one. Untested here: no torchvision.
_VIDEO_PROCESSOR_TYPES = {
    "Qwen2VLProcessor": "Qwen2VLVideoProcessor",
    "Qwen2_5_VLProcessor": "Qwen2VLVideoProcessor",
    "LlavaOnevisionProcessor": "LlavaOnevisionVideoProcessor",
    "SmolVLMProcessor": "SmolVLMVideoProcessor",
}
_VIDEO_KEYS = ("do_convert_rgb", "do_normalize", "do_rescale", "do_resize", "image_mean", "image_std",
               "resample", "rescale_factor", "size", "patch_size", "temporal_patch_size", "merge_size",
               "max_image_size")  # fmt: skip


def _video_section(image_section: dict[str, object], video_type: str) -> dict[str, object]:
    section = {k: v for k, v in image_section.items() if k in _VIDEO_KEYS}
    section["video_processor_type"] = video_type
    return section


@contextmanager
def building_folder(out: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``out`` to build a checkpoint in, removed on exit whatever is left of it; with
    :func:`move_into_place` the folder at ``out`` is then either complete or absent, never half written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def move_into_place(tmp: Path, out: Path, finished: Callable[[Path], bool] | None = None) -> None:
    """Rename the finished build onto ``out``; what was there is swapped out, then removed. ``finished(out)``:
    whether a concurrent builder's result already at ``out`` is as good (then losing the race is fine)."""
    old: Path | None = None
    if out.exists():
        if not any(out.iterdir()):
            out.rmdir()
        else:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if finished is None or not finished(out):  # a concurrent builder finishing first is fine; anything else isn't
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["MARKER_FILE", "SCRATCH_VLM_FAMILIES", "ScratchVLMOptions", "build_scratch_vlm", "building_folder",
           "move_into_place"]
