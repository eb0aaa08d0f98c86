"""The foundation: CLI, settings, errors and the test harness's own fixtures on real parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import redis

from roadnet.errors import InputError, MissingDependencyError, RoadnetError, UnreadableRasterError
from roadnet.settings import Settings


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadnet", *args], capture_output=True, text=True, env=env, check=False
    )


def test_cli_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "settings" in result.stdout


def test_settings_read_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROADNET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ROADNET_API_KEYS", "alpha, beta,")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.api_keys == ["alpha", "beta"]


def test_settings_command_prints_json(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "ROADNET_DATA_DIR": str(tmp_path)}
    result = run_cli("settings", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data_dir"] == str(tmp_path)


def test_error_tree() -> None:
    assert issubclass(UnreadableRasterError, InputError)
    assert issubclass(InputError, RoadnetError)
    message = str(MissingDependencyError("torch", "train"))
    assert "roadnet[train]" in message and "torch==2.13.0" in message


def test_shared_data_is_real(shared_data: Path) -> None:
    assert len(list((shared_data / "deepglobe" / "pairs").glob("*_sat.jpg"))) == 7


def test_redis_fixture_is_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("roadnet-test", "1")
    assert client.get("roadnet-test") == b"1"


def test_write_geotiff_round_trip(write_geotiff) -> None:  # type: ignore[no-untyped-def]
    array = np.arange(3 * 8 * 10, dtype=np.uint8).reshape(3, 8, 10)
    path = write_geotiff(array)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32633
        assert src.count == 3 and src.width == 10 and src.height == 8
        np.testing.assert_array_equal(src.read(), array)


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as the runtime install sees it: `import torch` fails."""
    code = "import sys; sys.modules['torch'] = None; from roadnet.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)


def test_runtime_install_lists_only_commands_that_work() -> None:
    listed = _cli_without_torch("--help")
    assert listed.returncode == 0, listed.stderr
    assert "predict" in listed.stdout and "serve" in listed.stdout
    assert "train" not in listed.stdout and "export" not in listed.stdout
    asked = _cli_without_torch("train")
    assert asked.returncode == 2
    assert "'roadnet train': torch is not installed; install it with: pip install 'roadnet[train]'" in (
        asked.stderr
    )
