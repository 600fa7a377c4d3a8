"""The networks shipped in the package: names, where they are, their model cards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tem_rf.core import pretrained


def test_the_emps_network_is_shipped_as_a_run_directory():
    assert "emps" in pretrained.available()
    folder = pretrained.resolve_model("pretrained:emps")
    assert folder == pretrained.DIRECTORY / "emps"
    for name in ("best.keras", "config.json", "metrics.json", "instance_rule.json", "history.csv", "MODEL_CARD.md"):
        assert (folder / name).is_file(), name
    # a few hundred kB, no download
    assert sum(p.stat().st_size for p in folder.iterdir()) < 400_000


def test_a_path_is_not_a_pretrained_name(tmp_path):
    assert pretrained.resolve_model(tmp_path / "run") == tmp_path / "run"
    assert pretrained.resolve_model("runs/pretrained:x") == Path("runs/pretrained:x")
    assert not pretrained.is_pretrained(Path("pretrained:emps"))  # a Path is always a path


@pytest.mark.parametrize("name", ["nothing", "", "../emps", ".hidden", "emps/best.keras"])
def test_an_unknown_name_is_refused_naming_the_shipped_ones(name):
    with pytest.raises(pretrained.UnknownPretrainedError) as refused:
        pretrained.resolve_model(f"pretrained:{name}")
    assert str(refused.value) == f"pretrained:{name}: no such network in tem_rf (shipped: pretrained:emps)"


def test_the_model_card_states_the_shipped_network_s_own_figures():
    folder = pretrained.pretrained_dir("emps")
    card = pretrained.model_card("emps").read_text()
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    rule = json.loads((folder / "instance_rule.json").read_text())
    assert config["architecture"] in card and f"{config['trainable_params']:,}" in card
    assert f"{metrics['test_hard_dice']:.3f}" in card and f"{metrics['val_hard_dice']:.3f}" in card
    assert f"{config['epochs']} epochs" in card and f"--seed={config['seed']}" in card
    assert f"boundary threshold {rule['boundary_threshold']:g}" in card
    sizes = config["particle_diameter_px"]
    assert f"{sizes['q05']:.1f}" in card and f"{sizes['q95']:.1f}" in card
    for needed in ("by256/emps", "10.1021/acs.jcim.0c01455", "MIT", "make_tfrecords", "experiments.train"):
        assert needed in card, needed
    assert not re.search(r"\bTODO\b|\bTBD\b|XXX", card)
