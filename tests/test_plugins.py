"""Plugins: a model from the user's own file, trained by the CLI and used by every later verb in
fresh processes; the run records the file's hash, so a changed or missing plugin is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import assert_one_line_error, run_subprocess

PLUGIN = '''
import torch
from netwright import register_model


@register_model("two_layer", family="feed-forward")
def two_layer(info, width: int = 16):
    """A user's own network: flatten, one hidden layer.

    Args:
        width: hidden units.
    """
    n_in = 1
    for s in info.input_shape:
        n_in *= s
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_in, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, info.num_outputs))
'''


def test_a_plugin_model_works_in_every_verb_and_a_changed_plugin_is_one_line(tmp_path: Path, cli):
    (tmp_path / "mine").mkdir()
    plugin = tmp_path / "mine" / "my_models.py"
    plugin.write_text(PLUGIN)
    spec = tmp_path / "mine" / "spec.yaml"
    spec.write_text(yaml.safe_dump({"plugins": ["my_models.py"], "data": {"name": "iris"},
                                    "model": {"name": "two_layer", "width": 8}, "train": {"epochs": 2, "threads": 1}}))
    runs = tmp_path / "runs"
    trained = run_subprocess("train", spec, "--runs-dir", runs, "--quiet")
    assert trained.returncode == 0, trained.stderr
    run = runs / "spec"
    recorded = json.loads((run / "plugins.json").read_text())
    assert recorded[0]["plugin"] == str(plugin.resolve()) and len(recorded[0]["sha256"]) == 64
    for verb in (["evaluate", run], ["predict", run, tmp_path / "x.npy"]):
        if verb[0] == "predict":
            import numpy as np

            np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
        done = run_subprocess(*verb)  # a fresh process: only the run says where the model comes from
        assert done.returncode == 0, done.stderr
    plugin.write_text(PLUGIN + "\n# edited\n")
    assert_one_line_error(cli("evaluate", run), "my_models.py changed since training", "restore it")
    plugin.unlink()
    assert_one_line_error(cli("evaluate", run), "my_models.py, which is missing")


def test_bad_plugins_are_one_line(tmp_path: Path, cli):
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    for plugins, fragment in ((["nope.py"], "nope.py: no such file"), (["broken.py"], "failed to import"),
                              (["no_such_module_xyz"], "cannot be imported")):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({"plugins": plugins, "data": {"name": "iris"},
                                                         "model": {"name": "mlp"}}))
        assert_one_line_error(cli("validate", tmp_path / "s.yaml"), fragment)


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path: Path):
    """A real package, built and installed by pip (its wheel into a target folder), whose
    pyproject names a module in the netwright.plugins entry-point group: its model is listed,
    a spec uses it with no plugins: line, and a run trains with it in a fresh process."""
    import os

    pkg = tmp_path / "mine-models"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "mine-models"\nversion = "0.1"\n'
        '[project.entry-points."netwright.plugins"]\nmine = "mine_models"\n'
        '[tool.setuptools]\npy-modules = ["mine_models"]\n')
    (pkg / "mine_models.py").write_text(PLUGIN)
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                            "--no-build-isolation", "--target", str(site), str(pkg)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    assert (site / "mine_models-0.1.dist-info" / "entry_points.txt").is_file()

    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = run_subprocess("models", env=env)
    assert listed.returncode == 0 and "two_layer" in listed.stdout, listed.stderr
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"data": {"name": "iris"}, "model": {"name": "two_layer"},
                                                     "train": {"epochs": 2}}))
    checked = run_subprocess("validate", tmp_path / "s.yaml", env=env)
    assert checked.returncode == 0 and "two_layer" in checked.stdout, checked.stderr
    trained = run_subprocess("train", tmp_path / "s.yaml", "--runs-dir", tmp_path / "runs", "--quiet", env=env)
    assert trained.returncode == 0 and (tmp_path / "runs" / "s" / "model.safetensors").is_file(), trained.stderr


def test_models_shows_a_plugin_files_model_and_says_how_when_it_is_not_loaded():
    """In fresh processes (an in-process registry may hold the plugin from another test)."""
    plugin = Path(__file__).parents[1] / "examples" / "plugins" / "my_models.py"
    r = run_subprocess("models", "tiny_resnet", "--plugin", plugin)
    assert r.returncode == 0 and "model.channels" in r.stdout and "model.blocks" in r.stdout, r.stderr
    r = run_subprocess("models", "tiny_resnet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "unknown model 'tiny_resnet'" in r.stderr and "--plugin FILE.py" in r.stderr
