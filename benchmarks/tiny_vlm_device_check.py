"""Tiny VLMs on whatever accelerator is here: build, load (auto device/dtype), generate, read Yes/No
probabilities, LoRA-train in that dtype, reload the adapter. Prints timings (median of warm runs).

Why a script and not a test: it needs a GPU for the interesting half (bf16 on CUDA), and the CI machines
have none. On a machine with torchvision it also checks that our saved folders load with plain
AutoProcessor (the standard classes with their video processors), which the CPU machines cannot check.

    python benchmarks/tiny_vlm_device_check.py [--families idefics3 qwen2_5_vl] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _median_ms(fn, repeats: int = 5) -> tuple[float, float]:
    import torch

    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def check_family(family: str, root: Path, overrides: dict) -> dict:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from PIL import Image
    from transformers import AutoProcessor

    from slc.agent.chat_inputs import chat_inputs
    from slc.agent.loading import load_processor, load_vlm, torchvision_available
    from slc.agent.lora import language_model_lora_targets
    from slc.agent.recognition import yes_no_token_ids
    from slc.agent.processors import is_videoless
    from slc.testing import build_tiny_vlm

    result: dict = {"family": family, "overrides": overrides, "torchvision": torchvision_available()}
    start = time.perf_counter()
    path = build_tiny_vlm(family, root / family, seed=0, **overrides)
    result["build_s"] = round(time.perf_counter() - start, 3)

    processor = load_processor(path)
    result["processor"] = type(processor).__name__
    result["videoless"] = is_videoless(processor)
    if torchvision_available():
        result["auto_processor"] = type(AutoProcessor.from_pretrained(path)).__name__

    model, processor = load_vlm(path)
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    result.update(device=str(device), dtype=str(dtype), params=sum(p.numel() for p in model.parameters()))
    image = Image.new("RGB", (96, 72), (200, 40, 40))
    inputs = chat_inputs(processor, image, "Is <bo> present in this image? Answer Yes or No.", device=device, dtype=dtype)
    result["prompt_tokens"] = int(inputs["input_ids"].shape[1])

    def generate():
        with torch.no_grad():
            return model.generate(**inputs, max_new_tokens=20, min_new_tokens=20, do_sample=False)

    result["generate20_ms_median"], result["generate20_ms_p95"] = (round(x, 2) for x in _median_ms(generate))
    yes, no = yes_no_token_ids(processor)
    with torch.no_grad():
        probs = model(**inputs).logits[0, -1].float().softmax(-1)
    result["p_yes"], result["p_no"] = float(probs[yes].sum()), float(probs[no].sum())

    batch = chat_inputs(processor, image, "Is <bo> present in this image? Answer Yes or No.", answer="Yes",
                        device=device, dtype=dtype)  # fmt: skip
    torch.manual_seed(0)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=language_model_lora_targets(model))
    )
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    peft_model.train()
    for _ in range(10):
        loss = peft_model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 3))
    result["losses"] = losses
    peft_model.eval()
    with torch.no_grad():
        trained = peft_model(**inputs).logits.float()
        probs = trained[0, -1].softmax(-1)
    result["p_yes_after"] = float(probs[yes].sum())
    with tempfile.TemporaryDirectory() as tmp:
        peft_model.save_pretrained(tmp)
        base, _ = load_vlm(path)
        reloaded = PeftModel.from_pretrained(base, tmp).eval()
        with torch.no_grad():
            again = reloaded(**inputs).logits.float()
    result["adapter_reload_max_abs_diff"] = float((again - trained).abs().max())
    return result


def main() -> None:
    from slc.testing import TINY_VLM_FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=list(TINY_VLM_FAMILIES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--bigger", action="store_true", help="also time a wider model (hidden 512, 8 layers, 224 px)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            for overrides in [{}] + ([dict(text_hidden_size=512, text_layers=8, text_heads=8, text_kv_heads=2,
                                           image_size=224, patch_size=14)] if args.bigger else []):  # fmt: skip
                try:
                    result = check_family(family, Path(tmp) / str(len(results)), overrides)
                except Exception as exc:  # report every family, even after one fails
                    result = {"family": family, "overrides": overrides, "error": f"{type(exc).__name__}: {exc}"}
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
