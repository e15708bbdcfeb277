"""langchain's standard test suites (``langchain-tests``) on every slc tool and on the in-process chat model.

The suites are langchain's, unchanged (their own ``test_no_overrides_DO_NOT_OVERRIDE`` checks that no test
was edited away); only their documented configuration is set here. The tools run on REAL services (tiny
real small VLM, real memory on embedded Chroma, SQLite sessions; the large VLM is the loopback
ControlServer, conftest.py). The chat model is ``LocalChatVLM`` on the demo's protocol checkpoint (a real
transformers model that always replies one JSON object, so every "the reply is not empty" check means
something).

Three standard tests do not run here and are marked so, with their reasons: ``test_image_inputs``
downloads its image from the internet (``test_images_in_every_shape`` below checks the same three shapes,
OpenAI ``image_url`` with base64, v1 ``image`` with base64, v1 ``image`` with a URL, here a data URL, on a
local photo), and ``test_init_time`` and ``test_stream_time`` need pytest-benchmark, which this suite turns off.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ChatModelIntegrationTests, ToolsIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests, ToolsUnitTests

from slc.agent.local_chat import LocalChatVLM
from slc.graphs.context import Context


class _Current:
    """What the module's fixtures built for the test being run (the suites read plain properties)."""

    real: Any = None
    checkpoint: str = ""


@pytest.fixture(autouse=True)
def _current(real, protocol_vlm_path, tiny_vlm_path):
    _Current.real = real
    _Current.checkpoint = str(protocol_vlm_path)
    memory = real.services.memory()
    if "gone" not in {c.name for c in memory.list()}:  # what forget_concept's example deletes, once per test
        memory.add("gone", real.images["c001"][1][:1], description="a concept the user asked to forget")


# -- the chat model ------------------------------------------------------------------------------------


class _ChatConfig:
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalChatVLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": _Current.checkpoint}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def has_tool_calling(self) -> bool:
        return False


_NO_BENCHMARK = ("times the model with pytest-benchmark, which this suite turns off (pyproject: its `benchmark` fixture "
                 "collides with the evals tests' own `benchmark` parameter); speed is measured in benchmarks/, never in "
                 "tests")


class TestLocalChatVLMUnit(_ChatConfig, ChatModelUnitTests):
    @pytest.mark.xfail(reason=_NO_BENCHMARK, run=False)
    def test_init_time(self, benchmark: Any) -> None:
        super().test_init_time(benchmark)


class TestLocalChatVLMIntegration(_ChatConfig, ChatModelIntegrationTests):
    @pytest.mark.xfail(reason=_NO_BENCHMARK, run=False)
    def test_stream_time(self, model: BaseChatModel, benchmark: Any, vcr: Any) -> None:
        super().test_stream_time(model, benchmark, vcr)

    @pytest.mark.xfail(reason="downloads its image from the internet, which these machines cannot reach; "
                              "test_images_in_every_shape checks the same shapes on a local photo", run=False)
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)


def _png_b64() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("block", [
    lambda b: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b}"}},
    lambda b: {"type": "image", "base64": b, "mime_type": "image/png"},
    lambda b: {"type": "image", "url": f"data:image/png;base64,{b}"},
], ids=["openai-image-url", "v1-base64", "v1-url"])
def test_images_in_every_shape(block):
    from slc.testing.protocol_vlm import reply_ok

    model = LocalChatVLM(model=_Current.checkpoint, max_tokens=64)
    text = "Give a concise description of this image."
    reply = model.invoke([HumanMessage(content=[{"type": "text", "text": text}, block(_png_b64())])])
    assert reply_ok(reply.text) and reply.usage_metadata["input_tokens"] > 20  # the image's tokens were in the prompt


# -- the tools --------------------------------------------------------------------------------------------


def _answer_tool() -> BaseTool:
    from slc.tools.answer import make_answer_tool

    return make_answer_tool(services=_Current.real.services, context=Context(tenant="a"))


def _memory_tool(name: str) -> BaseTool:
    from slc.tools.memory_tools import make_memory_tools

    return {t.name: t for t in make_memory_tools(Context(tenant="a"), services=_Current.real.services)}[name]


def _detect_tool() -> BaseTool:
    from slc.tools.personalize import PersonalizeTool

    services = _Current.real.services
    return PersonalizeTool.from_memory(services.memory(), services.small_vlm())


class _ToolConfig:
    make: Any = None

    @property
    def tool_constructor(self) -> BaseTool:
        return type(self).make()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return type(self).example(_Current.real)


class _AnswerTool(_ToolConfig):
    make = staticmethod(_answer_tool)
    example = staticmethod(lambda r: {"question": "Is <c000> in this photo?", "image_path": str(r.photo)})


class _RememberTool(_ToolConfig):
    make = staticmethod(lambda: _memory_tool("remember_concept"))
    example = staticmethod(lambda r: {"name": "newcomer", "image_paths": [str(r.photo)], "description": "my new mug",
                                      "category": "mug"})


class _RecallTool(_ToolConfig):
    make = staticmethod(lambda: _memory_tool("recall_concepts"))
    example = staticmethod(lambda r: {"query": "is c000 here?", "image_path": str(r.photo)})


class _ForgetTool(_ToolConfig):
    make = staticmethod(lambda: _memory_tool("forget_concept"))
    example = staticmethod(lambda r: {"name": "gone"})


class _DetectTool(_ToolConfig):
    make = staticmethod(_detect_tool)
    example = staticmethod(lambda r: {"image": str(r.photo), "concepts": ["c000", "c001"],
                                      "question": "Are they here?"})


@pytest.fixture(autouse=True)
def _fresh_newcomer(real):
    """remember_concept's example registers <newcomer>: each test starts without it."""
    memory = real.services.memory()
    if "newcomer" in {c.name for c in memory.list()}:
        memory.delete("newcomer")


class TestAnswerToolUnit(_AnswerTool, ToolsUnitTests):
    pass


class TestAnswerToolIntegration(_AnswerTool, ToolsIntegrationTests):
    pass


class TestRememberToolUnit(_RememberTool, ToolsUnitTests):
    pass


class TestRememberToolIntegration(_RememberTool, ToolsIntegrationTests):
    pass


class TestRecallToolUnit(_RecallTool, ToolsUnitTests):
    pass


class TestRecallToolIntegration(_RecallTool, ToolsIntegrationTests):
    pass


class TestForgetToolUnit(_ForgetTool, ToolsUnitTests):
    pass


class TestForgetToolIntegration(_ForgetTool, ToolsIntegrationTests):
    pass


class TestDetectToolUnit(_DetectTool, ToolsUnitTests):
    pass


class TestDetectToolIntegration(_DetectTool, ToolsIntegrationTests):
    pass


_TOOL_CONFIGS = (_AnswerTool, _RememberTool, _RecallTool, _ForgetTool, _DetectTool)


def test_every_tool_is_under_the_standard_tests():
    """A new tool made by slc.tools must get its standard-test classes here."""
    from slc.tools import make_memory_tools

    made = {_answer_tool().name, _detect_tool().name, *(t.name for t in make_memory_tools(services=_Current.real.services))}
    assert {cls.make().name for cls in _TOOL_CONFIGS} == made


@pytest.mark.parametrize("config", _TOOL_CONFIGS, ids=lambda c: c.__name__.strip("_"))
def test_every_example_call_succeeds(config):
    """The standard tests check the shape of a result, which an error message also has: the examples they
    call must really succeed."""
    tool = config.make()
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": config.example(_Current.real)})
    assert msg.status == "success", msg.content
