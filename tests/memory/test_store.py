"""ConceptMemory on a real embedded Chroma: CRUD, recall, integrity, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slc.agent.errors import (
    DuplicateConceptError,
    InvalidConceptNameError,
    InvalidImageError,
    UnknownConceptError,
)
from slc.memory.names import normalize_name, tenant_key
from slc.memory.store import ConceptMemory
from slc.memory.types import Identity

from .conftest import image_bytes, noise_image, stored_files, write_image


def _counts(mem: ConceptMemory) -> tuple[int, int]:
    return mem._concepts.count(), mem._imgs.count()


def test_add_get_list_roundtrip(memory, settings, tmp_path):
    src = write_image(tmp_path / "bo1.jpg", noise_image(1), "JPEG")
    ident = Identity(category="dog", attributes={"fur": "golden"})
    c = memory.add("<Bo>", [src, noise_image(2)], description="my golden retriever", identity=ident, tree={"root": "bo"})
    assert c.name == "Bo" and c.token == "<Bo>" and c.category == "dog" and len(c.images) == 2
    got = memory.get("bo")
    assert got.id == c.id and got.identity == ident and got.tree == {"root": "bo"}
    assert memory.get(c.id).name == "Bo" and memory.get("<BO>").id == c.id
    assert [x.name for x in memory.list()] == ["Bo"] and memory.exists("bo") and not memory.exists("b")
    paths = memory.reference_image_paths("bo")
    assert all(p.is_file() and p.is_relative_to(settings.images_dir) for p in paths)
    src.unlink()  # the memory holds its own copies
    assert all(p.is_file() for p in memory.reference_image_paths("bo"))
    # a fresh instance (another process would do the same) sees the same concept
    again = ConceptMemory(settings, image_embedder=memory.image_embedder, text_embedder=memory.text_embedder)
    assert again.get("bo").model_dump() == got.model_dump()


def test_category_option_sets_identity(memory):
    c = memory.add("mug", noise_image(3), category="cup")
    assert c.identity == Identity(category="cup")
    c2 = memory.add("cat", noise_image(4), identity=Identity(category="pet", attributes={"a": "b"}), category="cat")
    assert c2.identity.category == "cat" and c2.identity.attributes == {"a": "b"}


@pytest.mark.parametrize("bad", ["", "<>", "two words", "a<b>", "x" * 65, "-bo", "bo-", "_bo", "bo!", "<bo"])
def test_invalid_names(memory, bad):
    with pytest.raises(InvalidConceptNameError):
        memory.add(bad, noise_image(1))
    assert _counts(memory) == (0, 0)


def test_name_normalization():
    assert normalize_name(" <bo> ") == "bo"
    assert normalize_name("shiba-gray") == "shiba-gray" and normalize_name("Xuezhixia") == "Xuezhixia"
    assert normalize_name("小明") == "小明"


def test_duplicates_case_insensitive(memory):
    memory.add("bo", noise_image(1))
    with pytest.raises(DuplicateConceptError):
        memory.add("<BO>", noise_image(2))
    assert _counts(memory) == (1, 1)


def test_unknown_concept_suggests_close_names(memory):
    memory.add("shiba-gray", noise_image(1))
    memory.add("shiba-black", noise_image(2))
    with pytest.raises(UnknownConceptError) as err:
        memory.get("shiba-grey")
    assert err.value.suggestions[0] == "shiba-gray"
    assert "Did you mean" in str(err.value)
    with pytest.raises(UnknownConceptError):
        memory.delete("nothing")


@pytest.mark.parametrize("kind", ["corrupt", "empty", "non-image", "bomb", "missing"])
def test_bad_image_anywhere_stores_nothing(memory, settings, tmp_path, kind):
    good = [write_image(tmp_path / f"g{i}.png", noise_image(i)) for i in range(3)]
    bad = tmp_path / f"bad-{kind}.png"
    if kind == "corrupt":
        data = image_bytes(noise_image(9, (200, 200)))
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "non-image":
        bad.write_text("hello")
    elif kind == "bomb":
        from PIL import Image

        Image.new("1", (12000, 12000)).save(bad)
    with pytest.raises(InvalidImageError) as err:
        memory.add("bo", [good[0], good[1], bad, good[2]])
    assert str(bad) in str(err.value)
    assert _counts(memory) == (0, 0) and stored_files(settings) == [] and not memory.exists("bo")


def test_odd_modes_register_fine(memory):
    from PIL import Image

    cmyk = image_bytes(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG")
    i16 = Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 100)
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 128))
    c = memory.add("odd", [cmyk, i16, rgba])
    assert len(c.images) == 3


def test_embedder_failure_on_second_batch_stores_nothing(settings, image_embedder, text_embedder):
    class FailingSecondBatch:
        """Wraps the real encoder; raises on its 2nd batch (a crash mid-registration)."""

        def __init__(self, inner, batch=2):
            self.inner, self.dim, self.batch = inner, inner.dim, batch

        def embed_images(self, images):
            out = []
            for i in range(0, len(images), self.batch):
                if i > 0:
                    raise RuntimeError("encoder crashed on batch 2")
                out.append(self.inner.embed_images(images[i : i + self.batch]))
            return np.concatenate(out)

    mem = ConceptMemory(settings, image_embedder=FailingSecondBatch(image_embedder), text_embedder=text_embedder)
    with pytest.raises(RuntimeError, match="batch 2"):
        mem.add("bo", [noise_image(i) for i in range(5)])
    assert _counts(mem) == (0, 0) and stored_files(settings) == []


def test_chroma_failure_at_commit_rolls_back(memory, settings, monkeypatch):
    memory.add("keep", [noise_image(1)])
    before_files = stored_files(settings)

    def boom(*a, **k):
        raise RuntimeError("chroma went away at the commit step")

    monkeypatch.setattr(memory._concepts, "add", boom)
    with pytest.raises(RuntimeError, match="commit step"):
        memory.add("bo", [noise_image(1), noise_image(2), noise_image(3)])  # image 1 is shared with <keep>
    assert _counts(memory) == (1, 1)
    assert stored_files(settings) == before_files  # the shared file survives, new ones are gone
    assert not list((settings.data_dir / "memory-journal").rglob("*.json"))


def test_update_add_remove_images_rename(memory, settings):
    c = memory.add("bo", [noise_image(1)], description="a dog")
    c = memory.update("bo", description="my golden retriever", category="dog", adapter="meta-3")
    assert (c.description, c.category, c.adapter) == ("my golden retriever", "dog", "meta-3")
    assert memory.get("bo").adapter == "meta-3"
    c = memory.add_images("bo", [noise_image(2), noise_image(3), noise_image(1)])  # 1 is already there
    assert len(c.images) == 3 and _counts(memory) == (1, 3)
    drop = c.images[1].sha256
    c = memory.remove_images("bo", [drop[:10]])
    assert len(c.images) == 2 and drop not in {i.sha256 for i in c.images}
    assert _counts(memory) == (1, 2) and not memory.images.exists(drop)
    with pytest.raises(InvalidImageError, match="every reference image"):
        memory.remove_images("bo", [i.sha256 for i in c.images])
    with pytest.raises(InvalidImageError, match="matches no image"):
        memory.remove_images("bo", ["deadbeef00"])
    memory.add("cat", noise_image(9))
    with pytest.raises(DuplicateConceptError):
        memory.rename("bo", "<CAT>")
    r = memory.rename("bo", "bobo")
    assert r.id == c.id and memory.get("bobo").id == c.id and not memory.exists("bo")
    assert memory.recall_by_text("where is bobo?")[0].concept.id == c.id


def test_delete_removes_records_embeddings_and_unshared_files(memory, settings):
    shared = noise_image(1)
    memory.add("bo", [shared, noise_image(2)])
    memory.add("mam", [shared, noise_image(3)])
    assert len(stored_files(settings)) == 3
    memory.delete("bo")
    assert _counts(memory) == (1, 2)
    files = stored_files(settings)
    assert len(files) == 2  # bo's own image is gone, the shared one stays for mam
    memory.delete("<mam>")
    assert _counts(memory) == (0, 0) and stored_files(settings) == []
    assert memory.recall_by_image(shared, threshold=-1) == []


def test_recall_by_text_word_boundaries(memory):
    memory.add("bo", noise_image(1))
    memory.add("shiba-gray", noise_image(2))
    memory.add("mam", noise_image(3))

    def names(text):
        return [h.concept.name for h in memory.recall_by_text(text)]

    assert names("Is <bo> in the photo?") == ["bo"]
    assert names("what is BO doing") == ["bo"]
    assert names("bo's toy and (mam)") == ["bo", "mam"]
    assert names("a bottle, a bobo, a robot, bo_x, elbow") == []
    assert names("the shiba-gray and <Shiba-Gray>") == ["shiba-gray"]
    assert names("a gray shiba") == []
    assert names("") == []
    hit = memory.recall_by_text("<mam>")[0]
    assert hit.matched_by == ["name"] and hit.score == 1.0


def test_recall_by_image_open_set_and_ranking(memory):
    memory.add("bo", [noise_image(1), noise_image(2)])
    memory.add("mam", [noise_image(3)])
    hits = memory.recall_by_image(noise_image(2), threshold=0.9999)
    assert [h.concept.name for h in hits] == ["bo"] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].matched_by == ["image"]
    from PIL import Image

    # A flat black image is far from every noise picture in the tiny encoder's space.
    assert memory.recall_by_image(Image.new("RGB", (48, 40)), threshold=0.95) == []
    both = memory.recall_by_image(noise_image(3), threshold=-1.0, top_k=5)
    assert [h.concept.name for h in both][0] == "mam" and len(both) == 2  # aggregated per concept
    assert memory.recall_by_image(noise_image(3), threshold=-1.0, top_k=1)[0].concept.name == "mam"


def test_recall_merges_channels(memory):
    memory.add("bo", [noise_image(1)], description="my golden retriever puppy")
    memory.add("mug", [noise_image(2)], description="a blue ceramic coffee mug")
    hits = memory.recall(text="Is <bo> here?", image=noise_image(2), threshold=0.9999)
    assert [(h.concept.name, h.matched_by) for h in hits] == [("bo", ["name"]), ("mug", ["image"])]
    hyb = memory.recall(text="is my dog, the golden retriever, in it?", image=noise_image(1), hybrid=True,
                        threshold=0.9999, text_threshold=0.4)
    assert hyb[0].concept.name == "bo" and set(hyb[0].matched_by) == {"image", "text"}
    assert "mug" not in [h.concept.name for h in hyb]


def test_concept_embedding_is_normalized_mean(memory):
    memory.add("bo", [noise_image(1), noise_image(2)])
    emb = memory.concept_embedding("bo")
    direct = memory.image_embedder.embed_images([noise_image(1), noise_image(2)])
    mean = direct.mean(0)
    assert np.allclose(emb, mean / np.linalg.norm(mean), atol=1e-4)
    assert emb.dtype == np.float32 and np.isclose(np.linalg.norm(emb), 1.0)


def test_memory_without_image_encoder_serves_names_and_descriptions(memory, settings, text_embedder, monkeypatch):
    """The image encoder is loaded only when an image must be embedded."""
    from slc.agent.errors import ModelNotFoundError
    from slc.agent.settings import Settings

    memory.add("bo", [noise_image(1)], description="my golden retriever puppy")
    monkeypatch.delenv("SLC_IMAGE_ENCODER", raising=False)
    plain = ConceptMemory(Settings(), text_embedder=text_embedder)
    assert plain.settings.image_encoder is None and plain.settings.data_dir == settings.data_dir
    assert [h.concept.name for h in plain.recall(text="is <bo> here?")] == ["bo"]
    assert [h.concept.name for h in plain.recall_by_description("a golden retriever", threshold=0.3)] == ["bo"]
    assert plain.get("bo").description == "my golden retriever puppy" and len(plain.concept_embedding("bo")) > 0
    with pytest.raises(ModelNotFoundError, match="SLC_IMAGE_ENCODER"):
        plain.recall_by_image(noise_image(1))
    with pytest.raises(ModelNotFoundError, match="SLC_IMAGE_ENCODER"):
        plain.add("mam", [noise_image(2)])
    assert _counts(plain) == (1, 1)


def test_tenant_key_is_safe_and_distinct():
    keys = {tenant_key(t) for t in ["alice", "Alice", "a/../../b", "ü ñ 中", "x" * 300, "a b", "a-b"]}
    assert len(keys) == 7
    for k in keys:
        assert len(k) <= 60 and all(ch.isalnum() or ch == "-" for ch in k)


def test_journal_recovery_removes_orphans(memory, settings, image_embedder, text_embedder):
    """An interrupted add (image records + files written, commit never happened) is undone at next open."""
    items = memory._prepare([noise_image(1), noise_image(2)])
    rec = [f"{'0' * 32}:{p.sha}" for p in items]
    jdir = settings.data_dir / "memory-journal" / memory.key
    jdir.mkdir(parents=True)
    (jdir / "crashed.json").write_text(json.dumps({"record_ids": rec, "shas": [p.sha for p in items]}))
    memory._write_images("0" * 32, items)  # the crash happened right before the commit
    assert memory._imgs.count() == 2 and len(stored_files(settings)) == 2
    reopened = ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder)
    assert _counts(reopened) == (0, 0) and stored_files(settings) == [] and not list(jdir.glob("*.json"))


def test_fsck_removes_stray_files_and_records(memory, settings):
    memory.add("bo", [noise_image(1)])
    items = memory._prepare([noise_image(5)])
    memory._write_images("f" * 32, items)  # records of a concept that never committed, no journal
    memory.images.put(noise_image(6))  # a stray file
    assert memory.fsck() == 3
    assert _counts(memory) == (1, 1) and len(stored_files(settings)) == 1


def test_close_releases_the_store_so_a_recreated_folder_starts_empty(settings, image_embedder, text_embedder):
    import shutil

    with ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder) as mem:
        mem.add("bo", [noise_image(1)])
        assert [c.name for c in mem.list()] == ["bo"]
    shutil.rmtree(settings.data_dir)
    with ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder) as fresh:
        assert fresh.list() == []
