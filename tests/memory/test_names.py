"""One rule for concept names: the personalization tool reads names exactly as the memory does."""

from __future__ import annotations

from langchain_core.messages import ToolMessage

from slc.agent.detection import ConceptQuery
from slc.agent.settings import Settings
from slc.tools.personalize import PersonalizeTool

from .conftest import noise_image, write_image


def test_tool_rejects_an_invalid_name_with_the_memorys_message(tmp_path):
    asked: list[str] = []

    def resolver(name: str) -> ConceptQuery:
        asked.append(name)
        return ConceptQuery(name=name)

    allowed = Settings(privacy={"photo_roots": [tmp_path]})  # the tool reads photos only under allowed roots
    tool = PersonalizeTool(vlm=object(), resolver=resolver, settings=allowed)  # vlm never reached: names fail first
    photo = write_image(tmp_path / "p.png", noise_image(1))
    msg = tool.invoke({"name": tool.name, "args": {"image": str(photo), "concepts": ["<bo>", "two words"]},
                       "id": "c1", "type": "tool_call"})
    assert isinstance(msg, ToolMessage) and msg.status == "error"
    assert "'two words' is not valid" in msg.content and "e.g. 'bo'" in msg.content
    assert asked == ["bo"]
