"""The offline demo's stand-in for the large VLM: a tiny checkpoint that always gives ONE protocol reply.

Used by ``slc demo``, the product tests (as the reply of their loopback endpoint) and the stress benchmark.

Why: a random tiny model never writes the verifier's JSON, so with it the reflection loop can never be
seen to loop back (every verdict is "unverified"), and training a tiny model to write JSON after long,
varied prompts proved fragile (it memorizes contexts). So this builds the tiny Idefics3 of
:func:`slc.testing.build_tiny_vlm` and makes it context-free BY CONSTRUCTION: the attention output
projections of its language model are zeroed (each position then sees only its own token), the reply is
added to the tokenizer as two whole tokens, and a few hundred steps (about a second) teach the chain
"<end of prompt> -> part 1 -> part 2 -> end of turn". Whatever the prompt, it answers
:data:`PROTOCOL_REPLY`: one JSON object that is at the same time a valid verifier reply (verdict
"uncertain" on claim c1, so the graph loops back once) and a valid answer that says it is the demo model.
It is a real checkpoint, served by ``transformers serve`` like any other; its verdicts are constant, not
judgements: it demonstrates the protocol and the plumbing, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from slc.agent.errors import SLCError

REPLY_PARTS = ('{"verdicts": [{"id": "c1", "verdict": "uncertain", "feedback": "demo model: look again"}], ',
               '"answer": "Demo model: this reply shows the plumbing, not a judgement.", "concepts_used": []}')
PROTOCOL_REPLY = "".join(REPLY_PARTS)
MARKER = "slc_protocol_vlm.json"
VERSION = 4


def reply_ok(reply: str) -> bool:
    """The reply parses as BOTH a verifier reply (verdict "uncertain" on c1) and an answer."""
    try:
        obj = json.loads(reply)
        v = obj["verdicts"][0]
        return v["id"] == "c1" and v["verdict"] == "uncertain" and isinstance(obj["answer"], str) and bool(obj["answer"])
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def _zero_attention_outputs(model) -> list:
    """Zero (and freeze) every o_proj of the language model: no position can read another one."""
    decoder = model.get_decoder()
    params = []
    for name, module in decoder.named_modules():
        if name.endswith("self_attn.o_proj") or name.endswith("attention.o_proj"):
            for p in module.parameters():
                p.data.zero_()
                p.requires_grad_(False)
                params.append(p)
    if not params:
        raise SLCError("the demo's protocol model: no attention output projection found to switch off")
    return params


def build_protocol_vlm(out_dir: str | Path, *, seed: int = 0, max_steps: int = 2000) -> Path:
    """Build (or reuse) the demo's protocol-speaking tiny VLM in ``out_dir``; returns the folder.

    Checked before saving: greedy decoding of varied prompts (text-only, with a photo, with a system
    message) must give :data:`PROTOCOL_REPLY`. Built in a temporary sibling and renamed into place, so the
    folder is either complete or absent.
    """
    import torch
    from langchain_core.messages import HumanMessage, SystemMessage

    from slc.agent.local_chat import LocalChatVLM
    from slc.testing.tiny_vlms import build_tiny_vlm
    from slc.training.scratch import building_folder, move_into_place

    out = Path(out_dir).expanduser().resolve()
    expected = {"version": VERSION, "seed": seed, "reply": PROTOCOL_REPLY}
    marker = out / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == expected:
                return out
        except ValueError:
            pass
    with building_folder(out) as tmp:
        base = build_tiny_vlm("idefics3", tmp / "base", seed=seed)
        chat = LocalChatVLM(model_path=str(base), max_tokens=8)
        chat._load()
        model, proc = chat._model, chat._processor
        tok = proc.tokenizer
        tok.add_tokens(list(REPLY_PARTS))
        model.resize_token_embeddings(len(tok), mean_resizing=False)
        part_ids = [tok.convert_tokens_to_ids(p) for p in REPLY_PARTS]
        prompt = proc.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                                          add_generation_prompt=True, tokenize=False)
        last = tok(prompt, add_special_tokens=False)["input_ids"][-1]
        eos = tok.convert_tokens_to_ids(tok.eos_token)
        _zero_attention_outputs(model)
        seq = torch.tensor([[last, *part_ids, eos]])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
            model.train()
            for _ in range(max_steps):
                logits = model(input_ids=seq).logits[0, :-1]
                if torch.equal(logits.argmax(-1), seq[0, 1:]) and logits.log_softmax(-1).gather(1, seq[0, 1:, None]).min() > -0.05:
                    break
                loss = torch.nn.functional.cross_entropy(logits, seq[0, 1:])
                loss.backward()
                opt.step()
                opt.zero_grad()
        model.eval()
        from PIL import Image

        from slc.agent.large_vlm import image_part

        photo = image_part(Image.new("RGB", (80, 60), (200, 30, 30)), 1024)
        checks = [[HumanMessage("What does <c000> look like?")],
                  [SystemMessage("You are a careful visual verifier."), HumanMessage([photo, {"type": "text", "text": "Verify c1."}])]]
        chat.max_tokens = 8
        replies = [chat.invoke(m).content for m in checks]
        if not all(reply_ok(r) for r in replies):
            raise SLCError(f"the demo's protocol model does not give its reply: {replies!r}")
        final = tmp / "model"
        model.save_pretrained(final)
        proc.save_pretrained(final)
        (final / MARKER).write_text(json.dumps(expected))
        move_into_place(final, out)
    return out


__all__ = ["PROTOCOL_REPLY", "build_protocol_vlm", "reply_ok"]
