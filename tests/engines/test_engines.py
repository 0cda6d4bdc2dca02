"""Engine selection: names, recipe key and CLI errors (no cluster needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.engines import make_runner
from tunesmith.errors import ConfigError
from tunesmith.recipes import load_recipe

REPO = Path(__file__).resolve().parents[2]


def test_local_engine_is_the_default_and_unknown_names_fail():
    assert make_runner(None) is None and make_runner("local") is None
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        make_runner("spark")


def test_recipe_engine_key(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps([{"instruction": "a b c", "output": "x"}]))
    (tmp_path / "r.yaml").write_text("data: data.json\nengine: ray\nstages: [heuristics]\n")
    assert load_recipe(tmp_path / "r.yaml").engine == "ray"


def test_cli_unknown_engine_is_one_line(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps([{"instruction": "a b c", "output": "x"}]))
    (tmp_path / "r.yaml").write_text("data: data.json\nstages: [heuristics]\n")
    cmd = [sys.executable, "-m", "tunesmith", "run", str(tmp_path / "r.yaml"), "--out",
           str(tmp_path / "run"), "--engine", "spark"]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src")}
    )
    assert done.returncode != 0
    assert "unknown engine 'spark'" in done.stderr and "Traceback" not in done.stderr


def test_cli_ray_address_nobody_answers_is_one_line(tmp_path):
    """A cluster address nothing listens on fails at once (Ray would retry for minutes)."""
    pytest.importorskip("ray")
    from tests.servers import free_port

    (tmp_path / "data.json").write_text(json.dumps([{"instruction": "a b c", "output": "x"}]))
    (tmp_path / "r.yaml").write_text("data: data.json\nstages: [heuristics]\n")
    address = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "tunesmith", "run", str(tmp_path / "r.yaml"), "--out",
           str(tmp_path / "run"), "--engine", "ray", "--ray-address", address]  # fmt: skip
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: --ray-address {address}: cannot join the cluster: nothing answers at "
        f"{address} (Connection refused)"
    ]
