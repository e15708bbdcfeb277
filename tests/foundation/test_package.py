"""Package basics: the `slc` namespace imports from anywhere, the console script works, settings read
SLC_* variables and a TOML file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slc.agent.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """The current environment minus anything that would put the source tree on sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_namespace_imports_from_outside_the_repo(tmp_path: Path) -> None:
    code = (
        "import slc.agent, slc.tools, slc.memory, slc.graphs, slc.cli, slc.testing, pathlib, sys;"
        "import slc.agent as a;"
        "print(pathlib.Path(a.__file__).resolve().parent)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / "agent"
    assert not (tmp_path / "agent").exists()  # it was found through the install, not the working dir


def _slc_script() -> str:
    script = Path(sys.executable).with_name("slc")
    if script.is_file():
        return str(script)
    found = shutil.which("slc")
    if found is None:
        pytest.fail("the `slc` console script is not installed next to this Python (pip install -e .)")
    return found


def test_console_script_version_and_help(tmp_path: Path) -> None:
    from slc.agent import __version__

    version = subprocess.run([_slc_script(), "--version"], cwd=tmp_path, env=_clean_env(),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"slc-agent {__version__}"
    assert __version__ != "0.0.0+unknown"  # the distribution metadata is installed
    helped = subprocess.run([_slc_script(), "--help"], cwd=tmp_path, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    assert "Usage" in helped.stdout and "--version" in helped.stdout


def test_cli_loads_light_and_runs_as_a_module(tmp_path: Path) -> None:
    """`slc --help` must stay fast: building the app imports no model or store library."""
    code = (
        "import sys; from slc.cli.app import app;"
        "print(sorted(m for m in ('torch', 'transformers', 'chromadb', 'sentence_transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "slc.cli", "demo", "--help"], cwd=tmp_path, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    assert "Usage" in helped.stdout and "--in-process" in helped.stdout


def test_settings_read_nested_env_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./slc.toml
    monkeypatch.setenv("SLC_CHROMA__URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("SLC_SMALL__DEVICE", "cpu")
    monkeypatch.setenv("SLC_SMALL__MODEL", str(tmp_path / "model"))
    monkeypatch.setenv("SLC_TENANT", "alice")
    monkeypatch.setenv("SLC_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    assert settings.chroma.url == "http://127.0.0.1:8123" and settings.chroma.mode == "server"
    assert settings.small.device == "cpu"
    assert settings.small.model == str(tmp_path / "model")
    assert settings.tenant == "alice"
    assert settings.chroma_path == tmp_path / "data" / "chroma"


def test_settings_read_toml_from_slc_config_with_env_taking_priority(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLC_DATA_DIR", raising=False)
    config = tmp_path / "conf.toml"
    config.write_text(
        'tenant = "bob"\ndata_dir = "~/slc-test-data"\nrecall_top_k = 7\n'
        '[small]\nmodel = "/models/tiny"\ndtype = "bfloat16"\n'
        '[chroma]\nurl = "http://10.0.0.1:8000"\n'
    )
    monkeypatch.setenv("SLC_CONFIG", str(config))
    monkeypatch.setenv("SLC_RECALL_TOP_K", "3")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.tenant == "bob"
    assert settings.data_dir == Path("~/slc-test-data").expanduser()
    assert settings.small.model == "/models/tiny" and settings.small.dtype == "bfloat16"
    assert settings.chroma.url == "http://10.0.0.1:8000"
    assert settings.recall_top_k == 3  # the environment beats the file


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLC_SMALL__DTYPE", "float8")
    with pytest.raises(ValidationError, match="dtype"):
        Settings()


def test_missing_slc_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("SLC_CONFIG", str(missing))
    get_settings.cache_clear()
    with pytest.raises(FileNotFoundError, match="SLC_CONFIG") as info:
        get_settings()
    assert str(missing) in str(info.value)
