"""The device-resident sample store: its law, determinism, choice, and training on it."""

import os

import numpy as np
import pytest
import torch

from deepsdf.experiment import checkpoint_path, load_specs
from deepsdf.checkpoint import load_checkpoint

from deepsdf.data import pack_split
from deepsdf.sample_store import DeviceSamples, batch_generator, choose_store
from deepsdf.train import Trainer
from deepsdf_preprocess import formats

from conftest import make_experiment


@pytest.fixture(scope="module")
def packed(tiny_data, tmp_path_factory):
    data, split = tiny_data
    return pack_split(data, formats.read_split(split), cache_root=tmp_path_factory.mktemp("c"))


def test_each_scene_gets_half_positive_half_negative_rows_of_its_own(packed):
    store = DeviceSamples(packed, torch.device("cpu"))
    rows = np.asarray(packed.rows)
    scenes = [2, 0, 1, 2]
    drawn = store.draw(scenes, 1000, batch_generator("cpu", seed=0, epoch=0, batch=0)).numpy()
    for i, scene in enumerate(scenes):
        block = drawn[i * 1000:(i + 1) * 1000]
        pos = rows[packed.pos_start[scene]:packed.pos_start[scene] + packed.pos_count[scene]]
        neg = rows[packed.neg_start[scene]:packed.neg_start[scene] + packed.neg_count[scene]]
        assert np.all(block[:500, 3] > 0) and np.all(block[500:, 3] <= 0)
        assert _rows_in(block[:500], pos) and _rows_in(block[500:], neg)
    # uniform with replacement over the whole range: 200k draws reach most of its rows
    many = store.draw([0] * 200, 2000, batch_generator("cpu", seed=1, epoch=0, batch=0))
    positive = many.reshape(200, 2000, 4)[:, :1000].reshape(-1, 4).numpy()
    assert len(np.unique(positive, axis=0)) > 0.9 * packed.pos_count[0]


def _rows_in(block, pool):
    keys = {tuple(r) for r in pool.tolist()}
    return all(tuple(r) in keys for r in block.tolist())


def test_draws_are_deterministic_and_independent_of_the_process_split(packed):
    store = DeviceSamples(packed, torch.device("cpu"))
    scenes = [0, 1, 2, 1]
    whole = store.draw(scenes, 64, batch_generator("cpu", seed=3, epoch=5, batch=2))
    again = store.draw(scenes, 64, batch_generator("cpu", seed=3, epoch=5, batch=2))
    assert torch.equal(whole, again)
    halves = [store.draw(scenes, 64, batch_generator("cpu", seed=3, epoch=5, batch=2),
                         part=part) for part in (slice(0, 2), slice(2, 4))]
    assert torch.equal(torch.cat(halves), whole)
    other = store.draw(scenes, 64, batch_generator("cpu", seed=3, epoch=6, batch=2))
    assert not torch.equal(other, whole)


def test_the_store_is_chosen_by_budget_and_says_why(packed):
    fits = choose_store(packed, torch.device("cpu"), fraction=0.5)
    assert fits.kind == "device" and "fit" in fits.reason
    too_small = choose_store(packed, torch.device("cpu"), fraction=1e-12)
    assert too_small.kind == "mmap" and "exceed" in too_small.reason
    assert choose_store(packed, torch.device("cpu"), kind="mmap").kind == "mmap"
    with pytest.raises(ValueError, match="sample store"):
        choose_store(packed, torch.device("cpu"), kind="gpu")


@pytest.mark.parametrize("store", ["device", "mmap"])
def test_both_paths_train_deterministically_and_resume_bitwise(tiny_data, tmp_path, store,
                                                               caplog):
    import logging

    caplog.set_level(logging.INFO)
    data, split = tiny_data
    runs = {}
    for name, stops in (("straight", [4]), ("resumed", [2, 4])):
        experiment = make_experiment(tmp_path / name, data, split, NumEpochs=4,
                                     SamplesPerScene=512, SampleStore=store)
        for index, stop in enumerate(stops):
            trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
            trainer.train(resume=index > 0, epochs=stop - (stops[index - 1] if index else 0))
        runs[name] = load_checkpoint(checkpoint_path(experiment))
    assert torch.equal(runs["straight"]["codes"], runs["resumed"]["codes"])
    for key, value in runs["straight"]["decoder"].items():
        assert torch.equal(value, runs["resumed"]["decoder"][key])
    expected = "device-resident" if store == "device" else "memory-mapped"
    assert f"samples: {expected} path" in caplog.text


@pytest.mark.slow
def test_the_compiled_decoder_matches_eager_outputs_and_gradients():
    """torch.compile of the decoder: outputs and gradients equal to eager within 1e-5
    (float32 reassociation in fused kernels)."""
    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(latent_size=16, dims=(64,) * 4, latent_in=(2,),
                                    dropout=(), norm_layers=(0, 1, 2, 3)))
    compiled = torch.compile(decoder)
    codes = torch.randn(256, 16)
    points = torch.rand(256, 3) * 2 - 1
    eager_out = decoder(codes, points)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in decoder.parameters()]
    decoder.zero_grad()
    compiled_out = compiled(codes, points)
    compiled_out.sum().backward()
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-5)
    for eager, parameter in zip(eager_grads, decoder.parameters()):
        torch.testing.assert_close(parameter.grad, eager, rtol=1e-4, atol=1e-5)


def test_compile_is_a_spec_key_and_a_flag(tiny_data, tmp_path):
    from deepsdf.cli import build_parser

    data, split = tiny_data
    experiment = make_experiment(tmp_path / "e", data, split, Compile=True)
    assert load_specs(experiment).compile
    args = build_parser().parse_args(["train", str(experiment), "--compile",
                                      "--sample-store", "mmap"])
    assert args.compile and args.sample_store == "mmap"


@pytest.mark.slow
def test_the_gpu_benchmark_script_runs_end_to_end_in_cpu_smoke_mode(tmp_path):
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([str(root / "benchmarks" / "gpu.sh"), "--cpu-smoke"],
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OUT=str(tmp_path)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    import json as json_module

    figures = json_module.loads((tmp_path / "figures.json").read_text())
    for key in ("train_fp32", "train_tf32", "train_bf16", "train_bf16_compile",
                "projected_chairs_run_hours", "mesh_dense_seconds", "mesh_coarse_to_fine_seconds",
                "gauss_newton_64_seconds"):
        assert key in figures, key
    assert figures["train_fp32"]["trainer_samples_per_s"] > 0
    assert "preprocess_pyrender_seconds_per_mesh" in figures or "skipped" in str(
        figures.get("preprocess_pyrender"))


def test_bf16_mixed_precision_trains_with_float32_weights(tiny_data, tmp_path):
    data, split = tiny_data
    experiment = make_experiment(tmp_path / "bf16", data, split, NumEpochs=40,
                                 SamplesPerScene=512, MixedPrecision=True)
    trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
    result = trainer.train()
    assert np.isfinite(result.last_loss)
    payload = load_checkpoint(checkpoint_path(experiment))
    assert all(v.dtype == torch.float32 for v in payload["decoder"].values())
    losses = [entry[1] for entry in result.history]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])  # it learns
