"""slc.agent.loading: device/dtype resolution, model/processor loading and its errors, chat inputs, Yes/No ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slc.agent.errors import DeviceUnavailableError, ModelNotFoundError, UnsupportedModelError
from slc.agent.chat_inputs import chat_inputs
from slc.agent.loading import load_processor, load_vlm, resolve_device_dtype
from slc.agent.recognition import yes_no_token_ids


def test_resolve_device_dtype_defaults_and_explicit_values() -> None:
    device, dtype = resolve_device_dtype("cpu", "auto")
    assert device == torch.device("cpu") and dtype == torch.float32
    assert resolve_device_dtype("cpu", "bfloat16")[1] == torch.bfloat16
    assert resolve_device_dtype("cpu", "fp16")[1] == torch.float16
    assert resolve_device_dtype(torch.device("cpu"), torch.float64) == (torch.device("cpu"), torch.float64)
    auto_device, auto_dtype = resolve_device_dtype()
    if torch.cuda.is_available():
        assert auto_device.type == "cuda" and auto_dtype in (torch.bfloat16, torch.float16)
    elif auto_device.type == "cpu":
        assert auto_dtype == torch.float32


def test_resolve_device_dtype_rejects_what_is_not_there() -> None:
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_device_dtype("cpu", "float8")
    with pytest.raises(DeviceUnavailableError, match="Unknown device"):
        resolve_device_dtype("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="SLC_SMALL__DEVICE"):
            resolve_device_dtype("cuda")


def test_load_vlm_local_folder(tiny_vlm_path) -> None:
    model, processor = load_vlm(tiny_vlm_path("qwen2_5_vl"), device="cpu")
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert processor.tokenizer is not None
    model_bf16, _ = load_vlm(str(tiny_vlm_path("qwen2_5_vl")), device="cpu", dtype="bfloat16")
    assert next(model_bf16.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("loader", [load_vlm, load_processor])
def test_missing_local_folder_is_a_clear_error(loader, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as info:
        loader(str(missing))
    message = str(info.value)
    assert str(missing) in message and "SLC_SMALL__MODEL" in message


def test_folder_without_config_and_file_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_vlm(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_vlm(tmp_path / "weights.bin")


def test_unreachable_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        load_vlm("slc-agent-test/definitely-not-cached-vlm")
    message = str(info.value)
    assert "slc-agent-test/definitely-not-cached-vlm" in message
    assert "switched off" in message and "SLC_SMALL__MODEL" in message


def test_text_only_checkpoint_is_unsupported(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(UnsupportedModelError, match="not an image-text-to-text model"):
        load_vlm(tmp_path / "llama", device="cpu")


@pytest.mark.parametrize("family", ["idefics3", "qwen2_5_vl", "llava_onevision"])
def test_chat_inputs_batch_matches_single_and_labels_cover_only_the_answer(
    family: str, tiny_vlm_path, red_square, blue_tall
) -> None:
    processor = load_processor(tiny_vlm_path(family))
    tok = processor.tokenizer
    single = chat_inputs(processor, red_square, "Is <bo> here?")
    prompt = tok.decode(single["input_ids"][0])
    assert prompt.rstrip().endswith(("assistant", "Assistant:")), prompt  # the assistant turn is open

    batch = chat_inputs(processor, [red_square, blue_tall], ["Is <bo> here?", "Where is <bo> in the photo?"])
    assert batch["input_ids"].shape[0] == 2
    row = batch["input_ids"][0][batch["attention_mask"][0].bool()]
    assert torch.equal(row, single["input_ids"][0])  # left padding: same tokens, pad in front
    assert (batch["attention_mask"][:, -1] == 1).all()

    answers = ["Yes", '{"present": false, "location": null}']
    train = chat_inputs(processor, [red_square, blue_tall], ["Is <bo> here?", "Where?"], answer=answers,
                        padding_side="right")  # fmt: skip
    for i, answer in enumerate(answers):
        kept = train["labels"][i][train["labels"][i] != -100]
        assert tok.decode(kept) == answer + tok.eos_token
    assert (train["labels"][train["attention_mask"] == 0] == -100).all()


def test_chat_inputs_moves_and_casts(tiny_vlm_path, red_square) -> None:
    processor = load_processor(tiny_vlm_path("idefics3"))
    inputs = chat_inputs(processor, red_square, "hi", device="cpu", dtype=torch.bfloat16)
    assert inputs["pixel_values"].dtype == torch.bfloat16
    assert inputs["input_ids"].dtype == torch.long  # integer tensors are never cast
    with pytest.raises(ValueError, match="one image"):
        chat_inputs(processor, red_square, ["a", "b"])


def test_yes_no_token_ids_needs_distinct_single_tokens() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(UnsupportedModelError, match="Yes/No"):
        yes_no_token_ids(tokenizer)


def test_relative_folder_loads_and_nested_missing_path_is_not_a_hub_id(
    tiny_vlm_path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slc.agent.loading import resolve_checkpoint

    folder = tiny_vlm_path("idefics3")
    monkeypatch.chdir(folder.parent)
    assert resolve_checkpoint(folder.name) == str(folder.resolve())
    processor = load_processor(folder.name)
    assert processor.tokenizer is not None
    assert resolve_checkpoint("HuggingFaceTB/SmolVLM-256M-Instruct") == "HuggingFaceTB/SmolVLM-256M-Instruct"
    with pytest.raises(ModelNotFoundError, match="there is no folder"):
        resolve_checkpoint("models/small/vlm")
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_checkpoint("  ")
