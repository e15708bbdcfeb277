"""What the reference photos add to the ONE reflection call: request bytes and prompt tokens.

Why: the verifier compares each claimed individual with its reference photos (settings.large
``verify_references`` photos per claim at ``reference_image_side`` px, OpenAI detail "low"). This measures the
cost per call for 1/3/8 claims and 0..3 photos per claim:

- request bytes: the JSON body of the OpenAI chat-completions request LangChain sends (images as data URLs);
- prompt tokens of a local served model: the project's tiny Idefics3 (what `slc demo` serves), counted with
  its own processor and chat template, exactly the tokens `transformers serve` would report;
- GPT-4o-class tokens for the images, from OpenAI's published rule (detail "low": 85 tokens per image,
  whatever its size; the query photo at "auto"/high detail: 85 + 170 per 512 px tile after scaling).

Usage: ``python benchmarks/verify_tokens.py`` (offline, a few seconds).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from langchain_core.messages import convert_to_openai_messages

from slc.agent.large_vlm import image_part
from slc.agent.settings import Settings
from slc.cat.render import render
from slc.cat.world import make_world
from slc.graphs import prompting
from slc.testing import build_tiny_vlm


def high_detail_tokens(w: int, h: int) -> int:
    """OpenAI's rule for detail "high": fit in 2048, shortest side to 768, 170 per 512 px tile + 85."""
    s = min(1.0, 2048 / max(w, h))
    w, h = w * s, h * s
    s = min(1.0, 768 / min(w, h))
    w, h = w * s, h * s
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def main() -> None:
    large = Settings().large
    world = make_world(8, seed=0, instances=True)
    photo = render(world.concepts[0].tree, {"position": "left"}, size=512, seed=1)
    refs = [render(c.tree, None, size=512, seed=2) for c in world]
    query = image_part(photo, large.max_image_side)
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoProcessor

        proc = AutoProcessor.from_pretrained(build_tiny_vlm("idefics3", Path(tmp) / "m", seed=0))
    print(f"settings: verify_references={large.verify_references} reference_image_side={large.reference_image_side} "
          f"max_image_side={large.max_image_side}; query photo 512x512 -> {high_detail_tokens(512, 512)} GPT-4o tokens")
    print(f"{'claims':>6} {'refs/claim':>10} {'request KB':>10} {'tiny served model tokens':>25} {'GPT-4o image tokens':>20}")
    for n in (1, 3, 8):
        claims = [prompting.Claim(id=f"c{i + 1}", concept=c.name, claim="present", category=c.tree.root,
                                  identity_attributes=c.tree.identity()) for i, c in enumerate(world.concepts[:n])]
        for k in (0, 1, 2, 3):
            parts = {c.id: [image_part(refs[i], large.reference_image_side, detail="low")] * k for i, c in enumerate(claims)}
            messages = prompting.verify_messages(claims, query, parts)
            body = json.dumps({"model": "m", "messages": convert_to_openai_messages(messages)})
            chat = [{"role": m.type.replace("human", "user"), "content": [
                {"type": "image"} if p.get("type") == "image_url" else {"type": "text", "text": p["text"]}
                for p in (m.content if isinstance(m.content, list) else [{"type": "text", "text": m.content}])]}
                for m in messages]
            text = proc.apply_chat_template(chat, tokenize=False)
            images = [photo] + [refs[i] for i in range(n) for _ in range(k)]
            tokens = proc(text=[text], images=[images], return_tensors="pt")["input_ids"].shape[1]
            gpt = high_detail_tokens(512, 512) + 85 * n * k
            print(f"{n:>6} {k:>10} {len(body) / 1024:>10.1f} {tokens:>25} {gpt:>20}")


if __name__ == "__main__":
    main()
