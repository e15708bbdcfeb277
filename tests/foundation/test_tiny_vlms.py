"""Tiny image-text-to-text checkpoints: each family builds, reloads through the Auto classes, generates,
takes a LoRA, learns, and its adapter reloads to the same outputs. Plus the builder's guarantees
(determinism, caching, safe folders, single-token Yes/No)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from slc.agent.chat_inputs import chat_inputs
from slc.agent.loading import load_processor, torchvision_available
from slc.agent.lora import language_model_lora_targets
from slc.agent.processors import is_videoless
from slc.agent.recognition import yes_no_token_ids
from slc.testing import TINY_VLM_FAMILIES, build_tiny_vlm
from slc.training.scratch import MARKER_FILE

# Families whose transformers-5 processor carries a video processor (needs torchvision).
VIDEO_FAMILIES = {"smolvlm", "qwen2_vl", "qwen2_5_vl", "llava_onevision"}
# Image tokens for a 64x64 image with the default options (image_size=64, patch_size=8):
#   idefics3, smolvlm: (64/8)^2 patches / scale_factor^2 = 16; qwen: (64/8)^2 patches / merge 2x2 = 16;
#   llava_onevision (patch 16): base crop 4x4=16 + one anyres crop 16 + 4 row newlines = 36.
IMAGE_TOKENS_64PX = {"idefics3": 16, "smolvlm": 16, "qwen2_vl": 16, "qwen2_5_vl": 16, "llava_onevision": 36}


def _image_token_id(model) -> int:
    config = model.config
    return getattr(config, "image_token_id", None) or config.image_token_index


def _load_processor_checked(path: Path, family: str, caplog: pytest.LogCaptureFixture):
    """Reload the processor the way a user would, and assert which path was taken."""
    if torchvision_available() or family not in VIDEO_FAMILIES:
        processor = AutoProcessor.from_pretrained(path)
        assert not is_videoless(processor)
        return processor
    with caplog.at_level(logging.INFO, logger="slc.agent.loading"):
        processor = load_processor(path)
    assert is_videoless(processor), "without torchvision the video-less stand-in must be used"
    assert "torchvision is not installed" in caplog.text
    return processor


@pytest.mark.parametrize("family", TINY_VLM_FAMILIES)
def test_family_build_reload_generate_lora_train_reload(
    family: str, tiny_vlm_path, tmp_path: Path, red_square, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_vlm_path(family)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = _load_processor_checked(path, family, caplog)

    # Generate from an image + chat prompt.
    square = red_square.resize((64, 64))
    inputs = chat_inputs(processor, square, "Is <bo> present in this image? Answer Yes or No.")
    assert int((inputs["input_ids"] == _image_token_id(model)).sum()) == IMAGE_TOKENS_64PX[family]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        again = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.shape[1] > prompt_len
    assert torch.equal(out, again), "greedy generation must be deterministic"
    assert isinstance(processor.decode(out[0, prompt_len:], skip_special_tokens=True), str)

    # LoRA on the language model only, a few steps on one example: the loss must fall.
    from peft import LoraConfig, PeftModel, get_peft_model

    targets = language_model_lora_targets(model)
    assert targets and all("vision" not in t and "visual" not in t for t in targets)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    batch = chat_inputs(processor, square, "Is <bo> present in this image? Answer Yes or No.", answer="Yes")
    assert (batch["labels"] != -100).sum() >= 2  # "Yes" + end of sequence
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(10):
        loss = peft_model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5, losses

    # Save, reload onto a fresh base, and compare logits with the trained model's.
    peft_model.eval()
    with torch.no_grad():
        trained = peft_model(**inputs).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    base = AutoModelForImageTextToText.from_pretrained(path).eval()
    with torch.no_grad():
        base_logits = base(**inputs).logits
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**inputs).logits
    torch.testing.assert_close(reloaded_logits, trained, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base_logits, trained, atol=1e-4), "the adapter must change the outputs"


@pytest.mark.parametrize("family", TINY_VLM_FAMILIES)
def test_yes_no_are_single_tokens_and_json_round_trips(family: str, tiny_vlm_path) -> None:
    processor = load_processor(tiny_vlm_path(family))
    tok = processor.tokenizer
    for word in ("Yes", "No", " Yes", " No"):
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    yes, no = yes_no_token_ids(processor)
    assert tok.encode("Yes", add_special_tokens=False)[0] in yes
    assert tok.encode(" No", add_special_tokens=False)[0] in no
    assert {tok.decode([i]).strip().lower() for i in yes} == {"yes"}
    assert {tok.decode([i]).strip().lower() for i in no} == {"no"}
    text = '{"present": true, "location": "top left", "name": "<bo>", "note": "ünïcödé ✓ 42"}'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def _weights_bytes(folder: Path) -> bytes:
    return (folder / "model.safetensors").read_bytes()


def test_build_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = build_tiny_vlm("qwen2_5_vl", tmp_path / "a", seed=3)
    b = build_tiny_vlm("qwen2_5_vl", tmp_path / "b", seed=3)
    c = build_tiny_vlm("qwen2_5_vl", tmp_path / "c", seed=4)
    assert _weights_bytes(a) == _weights_bytes(b)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert _weights_bytes(a) != _weights_bytes(c)


def test_build_leaves_callers_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_vlm("idefics3", tmp_path / "m", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_complete_folder_is_reused_and_other_builds_replaced(tmp_path: Path) -> None:
    out = build_tiny_vlm("llava_onevision", tmp_path / "m", seed=0)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_vlm("llava_onevision", out, seed=0) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not rewritten
    build_tiny_vlm("llava_onevision", out, seed=1)
    assert json.loads((out / MARKER_FILE).read_text())["seed"] == 1
    # A build of ours missing a file (e.g. deleted by hand) is rebuilt, not trusted.
    (out / "model.safetensors").unlink()
    build_tiny_vlm("llava_onevision", out, seed=1)
    assert (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_foreign_folder_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a tiny checkpoint"):
        build_tiny_vlm("idefics3", out)
    assert (out / "notes.txt").read_text() == "do not delete"


def test_overrides_change_the_architecture_and_bad_input_is_rejected(tmp_path: Path, red_square) -> None:
    out = build_tiny_vlm("qwen2_vl", tmp_path / "big", text_layers=1, image_size=96)
    config = json.loads((out / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == 1
    processor = load_processor(out)
    inputs = chat_inputs(processor, red_square.resize((96, 96)), "hi")
    assert int((inputs["input_ids"] == config["image_token_id"]).sum()) == (96 // 8) ** 2 // 4
    with pytest.raises(ValueError, match="Unknown tiny VLM family"):
        build_tiny_vlm("gpt2", tmp_path / "x")
    with pytest.raises(ValueError):  # pydantic rejects unknown option names
        build_tiny_vlm("qwen2_vl", tmp_path / "x", hidden=7)
