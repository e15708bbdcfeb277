"""slc.training: meta-personalization training of the small VLM.

- :mod:`slc.training.data`: concept-world examples in the runtime's prompts (recognition, describe,
  SLC detection JSON), streamed on the fly; CaT dataset folders too.
- :mod:`slc.training.trainer`: ``TrainConfig`` + ``train`` on the HF Trainer (full or LoRA, CPU-time
  budgets, held-out evaluation curve, checkpoints/resume, bf16 on GPU).
- :mod:`slc.training.metaconcepts`: K-means meta-concepts over reference embeddings.
- :mod:`slc.training.bank`: one adapter per meta-concept, written as an :class:`slc.agent.adapters.AdapterBank`.
- :mod:`slc.training.benchmark`: the learning benchmark (``slc train benchmark``); the `slc train` command lives in slc.cli.train.
"""
