"""`deepsdf new`: a spec sized to the shapes, the machine and the budget; batches that leave no
shape out of an epoch; the trainer's warning when a spec does."""

import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import make_experiment
from deepsdf.cli import main
from deepsdf.config import parse_specs
from deepsdf.data import epoch_batches
from deepsdf.experiment import load_specs
from deepsdf.recipe import BUDGET_SHARE, plan_batches, plan_recipe
from deepsdf.train import Trainer
from deepsdf_preprocess.contract import write_split
from deepsdf_preprocess.errors import InputError


@settings(max_examples=200, deadline=None)
@given(shapes=st.integers(1, 600), target=st.sampled_from([12, 64]))
def test_planned_batches_leave_no_shape_out(shapes, target):
    scenes, per_scene, fill = plan_batches(shapes, target, target * 2048)
    assert 1 <= scenes <= shapes and per_scene % 2 == 0
    assert scenes * per_scene <= target * 2048 < scenes * (per_scene + 2) + 2 * scenes
    near = [d for d in range(-(-target // 2), 2 * target + 1) if shapes % d == 0]
    if shapes <= target:
        assert scenes == shapes and not fill
    elif near:
        assert not fill and shapes % scenes == 0 and scenes in near
    else:  # a prime far above the target, say
        assert fill and scenes == target
    covered = set()
    for batch in epoch_batches(shapes, scenes, seed=0, epoch=3, fill_last=fill):
        assert len(batch) == scenes
        covered.update(batch.tolist())
    assert covered == set(range(shapes))


@settings(max_examples=60, deadline=None)
@given(shapes=st.integers(2, 80), scenes=st.integers(1, 40), world=st.sampled_from([1, 2]))
def test_filled_epochs_split_across_processes_as_one(shapes, scenes, world):
    scenes = min(scenes, shapes) * world
    if scenes > shapes:
        return
    whole = epoch_batches(shapes, scenes, seed=1, epoch=0, fill_last=True)
    parts = [epoch_batches(shapes, scenes, seed=1, epoch=0, rank=r, world=world,
                           fill_last=True) for r in range(world)]
    for index, batch in enumerate(whole):
        assert np.array_equal(np.concatenate([part[index] for part in parts]), batch)
    assert set(np.concatenate(whole).tolist()) == set(range(shapes))
    dropped = epoch_batches(shapes, scenes, seed=1, epoch=0)  # the reference's rule
    assert len(dropped) == shapes // scenes
    assert [b.tolist() for b in dropped] == [b.tolist() for b in whole[:len(dropped)]]


def _splits(tmp_path, split_file, test_count=1):
    """The tiny data's split cut into train and test files."""
    split = json.loads(split_file.read_text())
    (dataset, classes), = split.items()
    (name, instances), = classes.items()
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    write_split(train, {dataset: {name: instances[test_count:]}})
    write_split(test, {dataset: {name: instances[:test_count]}})
    return train, test, len(instances) - test_count


def test_a_recipe_fits_the_budget_and_reads_back(tiny_data, tmp_path):
    data, split = tiny_data
    train, test, shapes = _splits(tmp_path, split)
    recipe = plan_recipe(data=data, train=train, test=test, kind="cpu", budget_minutes=2,
                         step_seconds=0.05)
    assert recipe.shapes == shapes == recipe.scenes_per_batch  # fewer than 12: one batch
    assert recipe.steps == recipe.epochs * recipe.batches_per_epoch
    assert abs(recipe.steps * 0.05 - 2 * 60 * BUDGET_SHARE) <= 0.05 * recipe.batches_per_epoch
    config = parse_specs(recipe.specs, base=tmp_path)
    assert config.epochs == recipe.epochs and config.scenes_per_batch == shapes
    assert config.fill_last_batch is None  # not the demo template's knowing "false"
    # The template's cuts (at 40% of its run) at the same share of this run.
    assert config.decoder_schedule.interval == round(0.4 * recipe.epochs)
    assert "2 minutes" in recipe.specs["Description"]
    gpu = plan_recipe(data=data, train=train, test=test, kind="gpu", steps=300)
    assert parse_specs(gpu.specs, base=tmp_path).decoder.dims == (512,) * 8
    assert gpu.steps == 300


def test_new_writes_a_spec_that_trains_from_anywhere(tiny_data, tmp_path, monkeypatch,
                                                     capsys):
    data, split = tiny_data
    train, test, shapes = _splits(tmp_path, split)
    experiment = tmp_path / "runs" / "mine"
    assert main(["new", str(experiment), "--data", str(data), "--train", str(train),
                 "--test", str(test), "--steps", "4", "--model", "small"]) == 0
    assert f"{shapes} training shapes" in capsys.readouterr().out
    specs = json.loads((experiment / "specs.json").read_text())
    assert not specs["DataSource"].startswith("/")  # relative to the experiment folder
    monkeypatch.chdir(tmp_path / "runs")
    result = Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    assert result.epochs_done == 4 and np.isfinite(result.last_loss)
    # A second `new` into a used folder is refused, even with --overwrite.
    assert main(["new", str(experiment), "--data", str(data), "--train", str(train),
                 "--steps", "4", "--model", "small", "--overwrite"]) == 2
    assert "trained model" in capsys.readouterr().err


def test_new_refuses_overlapping_splits_missing_samples_and_an_existing_spec(tiny_data,
                                                                             tmp_path):
    data, split = tiny_data
    train, test, _ = _splits(tmp_path, split)
    with pytest.raises(InputError, match="both the train and the test split"):
        plan_recipe(data=data, train=train, test=train, kind="cpu", steps=10)
    foreign = tmp_path / "foreign.json"
    write_split(foreign, {"gen": {"chairs": ["not_preprocessed"]}})
    with pytest.raises(InputError, match="no SdfSamples"):
        plan_recipe(data=data, train=foreign, test=None, kind="cpu", steps=10)
    with pytest.raises(InputError, match="budget"):
        plan_recipe(data=data, train=train, test=None, kind="cpu", steps=10,
                    budget_minutes=3)
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "specs.json").write_text("{}")
    assert main(["new", str(experiment), "--data", str(data), "--train", str(train),
                 "--steps", "4", "--model", "small"]) == 2
    assert (experiment / "specs.json").read_text() == "{}"  # the user's file is untouched


def test_the_trainer_warns_when_an_epoch_leaves_shapes_out(tiny_data, tmp_path, caplog):
    data, split = tiny_data  # three shapes
    leaky = make_experiment(tmp_path / "leaky", data, split, NumEpochs=1, ScenesPerBatch=2)
    with caplog.at_level(logging.WARNING, logger="deepsdf"):
        Trainer(leaky, load_specs(leaky), device="cpu", progress=False).train()
    assert "trains 2 of the 3 shapes" in caplog.text
    caplog.clear()
    filled = make_experiment(tmp_path / "filled", data, split, NumEpochs=1, ScenesPerBatch=2,
                             FillLastBatch=True)
    with caplog.at_level(logging.WARNING, logger="deepsdf"):
        result = Trainer(filled, load_specs(filled), device="cpu", progress=False).train()
    assert "of the 3 shapes" not in caplog.text
    knowing = make_experiment(tmp_path / "knowing", data, split, NumEpochs=1,
                              ScenesPerBatch=2, FillLastBatch=False)  # the reference's rule
    with caplog.at_level(logging.WARNING, logger="deepsdf"):
        Trainer(knowing, load_specs(knowing), device="cpu", progress=False).train()
    assert "of the 3 shapes" not in caplog.text
    initial = Trainer(filled, load_specs(filled), device="cpu", progress=False)._build()[1]
    moved = (result.model.codes.weight.detach() - initial.codes.weight.detach()).norm(dim=1)
    assert (moved > 0).all()  # every shape's code trained in the one epoch
