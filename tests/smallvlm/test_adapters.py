"""The adapter bank: format, validation, routing (real peft adapters saved by the bank)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slc.agent.adapters import AdapterBank
from slc.agent.errors import AdapterBankError


def test_bank_round_trip_and_routing(bank_for):
    bank = bank_for("idefics3")
    reopened = AdapterBank.load(bank.root)
    assert reopened.names == ["a0", "a1", "a2"]
    assert reopened.dim == 8 and reopened.manifest.embedder == "test-embedder"
    manifest = json.loads((bank.root / "manifest.json").read_text())
    assert manifest["adapters"][1]["path"] == "adapters/a1"
    assert manifest["adapters"][1]["concepts"] == ["cluster1"] and manifest["adapters"][1]["metrics"] == {"acc": 0.5}
    for name in reopened.names:
        assert (reopened.adapter_path(name) / "adapter_config.json").is_file()
        assert any(reopened.adapter_path(name).glob("adapter_model.*"))
    # nearest centroid by cosine, whatever the norm of the query
    rng = np.random.default_rng(0)
    for k in range(3):
        query = 5.0 * np.eye(3, 8)[k] + 0.3 * rng.standard_normal(8)
        assert reopened.route(query) == f"a{k}"
    queries = np.stack([np.eye(3, 8)[2] + 0.1, np.eye(3, 8)[0] * 0.01])
    assert reopened.route_many(queries) == ["a2", "a0"]
    scores = reopened.route_scores(queries)
    assert scores.shape == (2, 3) and np.all(scores <= 1.0 + 1e-6)


def test_bank_rejects_bad_input(bank_for, tmp_path):
    bank = bank_for("idefics3")
    with pytest.raises(AdapterBankError, match="dimension 8"):
        bank.route(np.ones(5))
    with pytest.raises(AdapterBankError, match="zero"):
        bank.route(np.zeros(8))
    with pytest.raises(AdapterBankError, match="already holds"):
        AdapterBank.create(bank.root, base_model="x")
    with pytest.raises(AdapterBankError, match="no manifest.json"):
        AdapterBank.load(tmp_path)
    fresh = AdapterBank.create(tmp_path / "b", base_model="x")
    with pytest.raises(AdapterBankError, match="no adapter_config.json"):
        fresh.add_adapter("z", tmp_path, [1.0, 0.0])
    with pytest.raises(AdapterBankError, match="no adapters"):
        fresh.route([1.0, 0.0])
    with pytest.raises(ValueError, match="must match"):
        fresh.add_adapter("../evil", bank.adapter_path("a0"), [1.0, 0.0])
    fresh.add_adapter("ok", bank.adapter_path("a0"), [1.0, 0.0])
    with pytest.raises(AdapterBankError, match="dimension"):
        fresh.add_adapter("ok2", bank.adapter_path("a1"), [1.0, 0.0, 0.0])
    with pytest.raises(AdapterBankError, match="already has"):
        fresh.add_adapter("ok", bank.adapter_path("a1"), [0.0, 1.0])
    # a manifest that names a missing folder is refused on load, with the adapter's name
    data = json.loads((fresh.root / "manifest.json").read_text())
    data["adapters"][0]["path"] = "adapters/missing"
    (fresh.root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(AdapterBankError, match="'ok'"):
        AdapterBank.load(fresh.root)
