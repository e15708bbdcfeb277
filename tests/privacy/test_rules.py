"""The two small rules under the privacy guarantees, alone: what a trace may hold, what a path may name."""

from __future__ import annotations

import pytest

from slc.agent.settings import Settings
from slc.graphs.paths import PathNotAllowedError, allowed_path
from slc.graphs.tracing import PATH_PLACEHOLDER, PLACEHOLDER, redact

SHA = "0ea87cd355f10c101c50bd8ae991986ffa0decb582d04a6d99cbee9d58648266"


def test_redact_names_stored_images_by_hash_and_hides_every_other_path():
    run = {"image": f"/home/me/.slc/images/alice-1a2b/0e/{SHA}.jpg", "question": "Is <bo> in /home/me/pics/a.jpg?",
           "refs": [f"C:\\Users\\me\\{SHA}.png", "~/Pictures/x.png"], "url": "data:image/png;base64," + "A" * 300,
           "keep": ["http://127.0.0.1:8000/v1/chat/completions", "1/2/2024", "and/or", "tenant:alice", SHA]}
    out = redact(run)
    assert out["image"] == f"image:sha256:{SHA}" and out["refs"] == [f"image:sha256:{SHA}", PATH_PLACEHOLDER]
    assert out["question"] == f"Is <bo> in {PATH_PLACEHOLDER}?" and out["url"] == PLACEHOLDER
    assert out["keep"] == run["keep"]


def test_allowed_path_follows_symlinks_and_never_reads_the_data_dir(tmp_path):
    root, outside = tmp_path / "photos", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "ok.png").write_bytes(b"x")
    (root / "link.png").symlink_to(outside / "secret.png")
    settings = Settings(data_dir=root / "slc-data", privacy={"photo_roots": [root]})
    assert allowed_path(str(root / "ok.png"), settings) == (root / "ok.png").resolve()
    for bad in (root / "link.png", outside / "secret.png", root / ".." / "outside" / "secret.png",
                root / "slc-data" / "images" / "x.png"):
        with pytest.raises(PathNotAllowedError, match="not allowed"):
            allowed_path(str(bad), settings)
    with pytest.raises(PathNotAllowedError, match="none"):
        allowed_path(str(root / "ok.png"), Settings(data_dir=tmp_path / "d"))
