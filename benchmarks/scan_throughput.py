"""Small-VLM scan throughput, adapter switching, and merged vs. per-concept adapters (tiny model, CPU).

    python benchmarks/scan_throughput.py [--family idefics3] [--threads 2] [--repeats 5] [--images 64]

What it measures (medians over repeats, p95 beside them, ratios against the named baseline of the same run):
1. Scan throughput (images/s) of ``SmallVLM.scan`` (the scored Yes/No pass, ``locate="never"``) for
   1 vs 16 vs 64 images per batch; baseline = batch 1. One line also times the generated JSON pass.
2. Adapter switch (``set_adapter`` between two loaded adapters) vs. reloading the model from disk with the
   adapter (``load_vlm`` + ``PeftModel.from_pretrained``); baseline = the reload.
3. Two concepts routed to two adapters: per-concept passes vs. one weighted LoRA merge (first call, which
   builds the merge, and cached calls), time per detect_batch; and how far the merge moves each concept's
   answer from the answer under its own adapter (|delta logits| at the answer position, |delta
   confidence|, share of Yes/No decisions that flip). The adapters are random, so the quality numbers show
   how much a merge perturbs each concept, not accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def photos(n: int):
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (64 + (i % 3) * 8, 80, 3), dtype=np.uint8)) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="idefics3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()

    import logging

    import torch
    from peft import PeftModel

    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from slc.agent.detection import ConceptQuery
    from slc.agent.chat_inputs import chat_inputs
    from slc.agent.concept_prompts import build_prompt
    from slc.agent.loading import load_vlm
    from slc.agent.recognition import yes_no_scores
    from slc.agent.small_vlm import SmallVLM
    from slc.testing import build_tiny_vlm

    sys_tmp = Path(tempfile.mkdtemp(prefix="slc-bench-"))
    model_path = build_tiny_vlm(args.family, sys_tmp / args.family, seed=0)
    bank = _bank(model_path, sys_tmp / "bank")
    imgs = photos(args.images)
    bo = ConceptQuery(name="bo", description="my brown dog", category="dog")
    print(f"# tiny {args.family}, CPU, torch threads={args.threads}, repeats={args.repeats}, {args.images} images")

    # 1. scan throughput ---------------------------------------------------------------------------------
    vlm = SmallVLM.from_pretrained(model_path, device="cpu", min_yes_no_mass=0.0, max_new_tokens=32)
    vlm.scan(imgs[:4], bo, batch_size=4, locate="never")  # warm-up
    print("\n## scan throughput (scored Yes/No pass, locate='never')")
    print(f"{'batch':>6} {'median s/scan':>14} {'p95 s':>8} {'images/s':>10} {'vs batch 1':>10}")
    base_rate = None
    for bs in (1, 16, 64):
        times = timed(lambda: vlm.scan(imgs, bo, batch_size=bs, locate="never"), args.repeats)
        med = statistics.median(times)
        rate = len(imgs) / med
        base_rate = base_rate or rate
        print(f"{bs:>6} {med:>14.3f} {pct(times, 95):>8.3f} {rate:>10.1f} {rate / base_rate:>9.2f}x")
    gen_imgs = imgs[:16]
    times = timed(lambda: vlm.scan(gen_imgs, bo, batch_size=16, locate="always"), max(2, args.repeats // 2))
    print(f"with the generated JSON pass (locate='always', max_new_tokens=32, batch 16, {len(gen_imgs)} images): "
          f"median {statistics.median(times):.3f} s = {len(gen_imgs) / statistics.median(times):.1f} images/s")

    # 2. adapter switch vs reload -------------------------------------------------------------------------
    vlm = SmallVLM.from_pretrained(model_path, device="cpu", bank=bank, min_yes_no_mass=0.0)
    vlm.load_adapter("a0")
    vlm.load_adapter("a1")
    switches = []
    for k in range(400):
        t0 = time.perf_counter()
        vlm.model.set_adapter("a0" if k % 2 else "a1")
        switches.append(time.perf_counter() - t0)

    def reload() -> None:
        model, _ = load_vlm(model_path, device="cpu", dtype="float32")
        PeftModel.from_pretrained(model, str(bank.adapter_path("a1")), adapter_name="a1")

    reloads = timed(reload, args.repeats)
    print("\n## adapter switch vs reload from disk")
    print(f"set_adapter:           median {statistics.median(switches) * 1e6:9.1f} us  p95 {pct(switches, 95) * 1e6:9.1f} us")
    print(f"reload model+adapter:  median {statistics.median(reloads) * 1e3:9.1f} ms  p95 {pct(reloads, 95) * 1e3:9.1f} ms")
    print(f"reload / switch: {statistics.median(reloads) / statistics.median(switches):,.0f}x")

    # 3. merged vs per-concept -----------------------------------------------------------------------------
    q = [bo.model_copy(update={"adapter": "a0"}), ConceptQuery(name="mochi", description="a white cat", adapter="a1")]
    batch = imgs[:16]
    vlm.config = vlm.config.model_copy(update={"combine": "per_concept"})
    per_times = timed(lambda: vlm.detect_batch(batch, q, batch_size=16, locate="never"), args.repeats)
    per = vlm.detect_batch(batch, q, batch_size=16, locate="never")
    vlm.config = vlm.config.model_copy(update={"combine": "merge"})
    t0 = time.perf_counter()
    merged = vlm.detect_batch(batch, q, batch_size=16, locate="never")
    first_merge = time.perf_counter() - t0
    merge_times = timed(lambda: vlm.detect_batch(batch, q, batch_size=16, locate="never"), args.repeats)
    print(f"\n## 2 concepts x {len(batch)} images, adapters a0/a1: per-concept passes vs weighted merge")
    print(f"per_concept:          median {statistics.median(per_times) * 1e3:8.1f} ms  p95 {pct(per_times, 95) * 1e3:8.1f} ms (baseline)")
    print(f"merge, first call:           {first_merge * 1e3:8.1f} ms (builds the merged adapter)")
    print(f"merge, cached:        median {statistics.median(merge_times) * 1e3:8.1f} ms  p95 {pct(merge_times, 95) * 1e3:8.1f} ms "
          f"({statistics.median(merge_times) / statistics.median(per_times):.2f}x per_concept)")

    # quality: how far the merge moves each concept from its own adapter (and, for scale, base vs own)
    dlogit_merge, dlogit_base = [], []
    handle = vlm.handle()
    for query in q:
        inputs = chat_inputs(vlm.processor, [[im] for im in batch], [build_prompt(query, "recognize", 0)] * len(batch))
        with vlm.using(query.adapter):
            own = handle.last_logits(inputs)
        with vlm.using(vlm.merged_adapter(["a0", "a1"])):
            mer = handle.last_logits(inputs)
        with vlm.using(None):
            base = handle.last_logits(inputs)
        dlogit_merge.append((own - mer).abs().max(dim=-1).values.mean().item())
        dlogit_base.append((own - base).abs().max(dim=-1).values.mean().item())
        s_own = yes_no_scores(own, handle.yes_ids, handle.no_ids)
        s_mer = yes_no_scores(mer, handle.yes_ids, handle.no_ids)
        dconf = [abs(a.confidence - b.confidence) for a, b in zip(s_own, s_mer)]
        flips = sum((a.confidence >= 0.5) != (b.confidence >= 0.5) for a, b in zip(s_own, s_mer))
        print(f"<{query.name}> (own adapter {query.adapter}): mean max|dlogit| merge vs own {dlogit_merge[-1]:.3f} "
              f"(base vs own {dlogit_base[-1]:.3f}); mean |dconfidence| {statistics.mean(dconf):.4f}; "
              f"decision flips {flips}/{len(batch)}")
    agree = sum(a.status == b.status for r1, r2 in zip(per, merged) for a, b in zip(r1, r2))
    print(f"status agreement merged vs per-concept: {agree}/{sum(len(r) for r in per)}")


def _bank(model_path: Path, root: Path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from slc.agent.adapters import AdapterBank

    base = AutoModelForImageTextToText.from_pretrained(model_path)
    bank = AdapterBank.create(root, base_model=str(model_path))
    peft_model = None
    for k in range(3):
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False)
        torch.manual_seed(k)
        if peft_model is None:
            peft_model = get_peft_model(base, cfg, adapter_name=f"a{k}")
        else:
            peft_model.add_adapter(f"a{k}", cfg)
        bank.add_adapter(f"a{k}", peft_model, np.eye(3, 8)[k], adapter_name=f"a{k}")
    return bank


if __name__ == "__main__":
    main()
