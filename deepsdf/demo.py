"""The end-to-end demo on the embedded procedural category (``deepsdf demo``).

generate chairs and tables -> preprocess (with one virtual partial scan per shape) -> split ->
train the small CPU model -> reconstruct the held-out shapes -> evaluate beside the retrieval
baseline -> complete one held-out shape from a single-view scan -> interpolate between a
chair and a table -> ``OUT/report/index.html`` (pictures, metric tables, training curve) and
``OUT/report/summary.json``.  Every step resumes on a rerun.

``quick`` is the reduced mode CI runs: 4 shapes per category, fewer samples, 300 epochs,
64^3 meshes, small pictures.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    count: int = 12  # shapes per category
    samples: int | None = None  # SDF samples per shape (default: the train preset, 500k)
    epochs: int | None = None  # training epochs (default: the demo spec's 500)
    resolution: int = 128  # mesh grid of reconstructions, completion, interpolation
    picture_size: int = 192
    steps: int = 8  # interpolation steps


QUICK = DemoSettings(count=4, samples=100_000, epochs=300, resolution=64, picture_size=128,
                     steps=5)


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), *, workers: int = 2,
             backend: str = "pyrender", seed: int = 0, device: str = "auto",
             max_epochs: int | None = None) -> dict:
    """Run every step; returns the report summary (also written to ``OUT/report``)."""
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.formats import read_split, write_split
    from deepsdf_preprocess.partial_scan import VirtualScanConfig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.splits import make_split

    out = Path(out)
    meshes, data = out / "meshes", out / "data"
    for category in ("chairs", "tables"):
        write_shapes(meshes, category, settings.count, seed)
    _say(f"1/7 generated {settings.count} chairs and {settings.count} tables under {meshes}")
    config = PreprocessConfig(partial_scan=VirtualScanConfig())
    if settings.samples:
        config = replace(config, sampling=replace(config.sampling, count=settings.samples))
    report = preprocess_dataset(meshes, data, "procedural", config=config, workers=workers,
                                seed=seed, backend=backend)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} shapes failed to preprocess; see "
                           f"{report.manifest_path}")
    train, test = make_split(read_split(report.split_path), test_fraction=0.25, seed=seed)
    train_path, test_path = (data / "splits" / f"procedural_{n}.json" for n in ("train", "test"))
    write_split(train_path, train)
    write_split(test_path, test)
    _say(f"2/7 preprocessed {len(report.succeeded)} shapes into {data}; manifest "
         f"{report.manifest_path}")

    trainer = _train(out, data, train_path, test_path, settings, device, max_epochs)
    experiment = out / "experiment"

    from deepsdf.evaluate import evaluate_split
    from deepsdf.inference import reconstruct_split
    from deepsdf.reconstruct import GAUSS_NEWTON

    test_split = read_split(test_path)
    reconstruct_split(experiment, test_split, data_dir=data, solver=GAUSS_NEWTON,
                      resolution=settings.resolution, skip=True, device=trainer.device)
    evaluation = evaluate_split(experiment, test_split, data_dir=data)
    ours = evaluation["reconstruction"]["chamfer"]["mean"]
    retrieved = evaluation["retrieval_code"]["chamfer"]["mean"]
    _say(f"4/7 reconstructed and evaluated the {evaluation['shapes']} held-out shapes: mean "
         f"Chamfer {ours:.3g} vs {retrieved:.3g} for retrieval by code")

    from deepsdf.completion import complete_split
    from deepsdf.latents import split_instances

    completed_key = split_instances(test_split)[0]
    dataset, class_name, instance = completed_key.split("/", 2)
    completion = complete_split(experiment, {dataset: {class_name: [instance]}}, data_dir=data,
                                out_dir=out / "completion", resolution=settings.resolution,
                                device=trainer.device)
    _say(f"5/7 completed {completed_key} from one depth view: Chamfer "
         f"{completion.rows[0]['chamfer']:.3g} vs {completion.rows[0]['retrieval_chamfer']:.3g}"
         " for the training shape nearest to the scan")

    from deepsdf.interpolate import interpolation_pictures

    train_ids = split_instances(read_split(train_path))
    chair = next(k for k in train_ids if "/chairs/" in k)
    table = next(k for k in train_ids if "/tables/" in k)
    interpolation_pictures(experiment, out / "report" / "interpolation", start=chair,
                           end=table, steps=settings.steps, resolution=settings.resolution,
                           size=settings.picture_size, device=trainer.device)
    _say(f"6/7 interpolated from {chair} to {table}")

    summary = _write_report(out, data, experiment, trainer, evaluation, completion,
                            completed_key, (chair, table), settings)
    _say(f"7/7 report: {out / 'report' / 'index.html'}")
    return summary


def _train(out, data, train_path, test_path, settings, device, max_epochs):
    from deepsdf.config import parse_specs
    from deepsdf.train import Trainer

    template = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "specs.json"
    if not template.is_file():
        raise ValueError(f"the demo spec {template} is missing (run from a source checkout)")
    specs = json.loads(template.read_text())
    experiment = out / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    # SpecsVersion 2: paths relative to the spec's folder, so the run works from anywhere.
    relative = {name: os.path.relpath(Path(path).resolve(), experiment.resolve())
                for name, path in (("DataSource", data), ("TrainSplit", train_path),
                                   ("TestSplit", test_path))}
    specs.update(relative)
    if settings.epochs:
        specs["NumEpochs"] = settings.epochs
        specs["SnapshotFrequency"] = settings.epochs
    (experiment / "specs.json").write_text(json.dumps(specs, indent=2) + "\n")
    trainer = Trainer(experiment, parse_specs(specs, base=experiment), device=device)
    result = trainer.train(resume=True, epochs=max_epochs)
    loss = trainer.history[-1][1] if trainer.history else result.last_loss
    _say(f"3/7 trained the demo model to epoch {result.epochs_done} (loss {loss:.4g}); "
         f"checkpoint {result.checkpoint}")
    return trainer


def _write_report(out, data, experiment, trainer, evaluation, completion, completed_key,
                  ends, settings) -> dict:
    import csv

    import trimesh

    from deepsdf.checkpoint import checkpoint_path, load_checkpoint
    from deepsdf.evaluate import SourceMeshes
    from deepsdf.inference import output_paths
    from deepsdf.pictures import default_camera, render_meshes, save_png, tile
    from deepsdf.report import Report, training_curve
    from deepsdf_preprocess import formats

    folder = out / "report"
    camera = default_camera(settings.picture_size)
    sources = SourceMeshes(data)
    history = load_checkpoint(checkpoint_path(experiment)).get("history", [])
    page = Report("deepsdf demo: procedural chairs and tables")
    beats = evaluation["reconstruction"]["chamfer"]["mean"] < \
        evaluation["retrieval_code"]["chamfer"]["mean"]
    page.paragraph(
        f"{len(trainer.model.codes.instance_ids)} training shapes, "
        f"{evaluation['shapes']} held-out shapes; decoder of experiments/demo/specs.json "
        f"trained for {history[-1][0] if history else '?'} epochs. Held-out reconstructions "
        f"{'beat' if beats else 'do NOT beat'} the retrieval baseline on the mean Chamfer.")

    page.heading("Held-out shapes: reconstruction vs retrieval")
    rows = []
    for section, label in (("reconstruction", "DeepSDF (Gauss-Newton fit)"),
                           ("retrieval_code", "retrieval: nearest code"),
                           ("retrieval_oracle", "retrieval: oracle nearest by Chamfer")):
        block = evaluation.get(section, {})
        rows.append([label] + [block.get(m, {}).get(stat, "")
                               for m in ("chamfer", "f_score", "normal_consistency", "iou")
                               for stat in ("mean", "median")])
    page.table(["", "Chamfer mean", "Chamfer median", "F-score mean", "F-score median",
                "normal cons. mean", "normal cons. median", "IoU mean", "IoU median"], rows)
    with open(experiment / "Evaluation" / "latest" / "metrics.csv") as stream:
        shapes = list(csv.DictReader(stream))
    truth, ours, retrieved = [], [], []
    for row in shapes:
        key = row["instance"]
        truth.append(sources.normalized(key))
        mesh_path = output_paths(experiment, "latest", key)["mesh"]
        ours.append(trimesh.load(mesh_path, process=False) if mesh_path.is_file() else None)
        other = row.get("retrieval_code_instance")
        retrieved.append(sources.normalized(other) if other else None)
    images = render_meshes(truth + ours + retrieved, camera)
    count = len(shapes)
    save_png(folder / "held_out.png", tile(images, columns=count))
    page.picture("held_out.png", "rows: ground truth, DeepSDF reconstruction, retrieval by "
                 "code (" + ", ".join(r["instance"].split("/")[-1] for r in shapes) + ")")

    page.heading("Shape completion from one depth view")
    row = completion.rows[0]
    page.table(["", "Chamfer", "F-score", "Chamfer on the unseen part"],
               [["DeepSDF completion", row["chamfer"], row["f_score"], row["chamfer_unseen"]],
                [f"retrieval ({row['retrieval_instance'].split('/')[-1]})",
                 row["retrieval_chamfer"], row["retrieval_f_score"],
                 row["retrieval_chamfer_unseen"]]])
    scan = formats.read_partial_scan(
        formats.key_paths(data, completed_key)[formats.PARTIAL_SCANS])
    completed = trimesh.load(out / "completion" / "Meshes" / f"{completed_key}.ply",
                             process=False)
    offset, scale = formats.read_normalization(
        formats.key_paths(data, completed_key)[formats.NORMALIZATION_PARAMETERS])
    from deepsdf_preprocess.normalize import to_normalized

    completed.vertices = to_normalized(completed.vertices, offset, scale)
    pictures = render_meshes([completed, sources.normalized(completed_key)], camera)
    save_png(folder / "completion.png", tile([_depth_picture(scan["depth"],
                                                             settings.picture_size)]
                                             + pictures))
    page.picture("completion.png", f"{completed_key}: the input depth scan, the completed "
                 "shape, the ground truth")

    page.heading("Interpolation from a chair to a table (slerp)")
    page.picture("interpolation/strip.png", f"{ends[0]} to {ends[1]}")
    page.picture("interpolation/interpolation.gif", "the same path, animated")

    page.heading("Training curve")
    if history:
        training_curve(history, folder / "training_curve.png")
        page.picture("training_curve.png", "mean loss per epoch")
    page.write(folder)
    summary = {"held_out_shapes": evaluation["shapes"],
               "mean_chamfer": evaluation["reconstruction"]["chamfer"]["mean"],
               "retrieval_mean_chamfer": evaluation["retrieval_code"]["chamfer"]["mean"],
               "beats_retrieval_on_mean": bool(beats),
               "completion": {k: row[k] for k in ("instance", "chamfer", "retrieval_chamfer",
                                                  "chamfer_unseen")},
               "report": str(folder / "index.html")}
    formats.write_json(folder / "summary.json", summary)
    return summary


def _depth_picture(depth, size: int) -> np.ndarray:
    """A grey (size, size, 3) picture of a depth image (near = dark, no measurement = white)."""
    from PIL import Image

    depth = np.asarray(depth, dtype=np.float64)
    seen = depth > 0
    picture = np.full(depth.shape, 255.0)
    if seen.any():
        low, high = depth[seen].min(), depth[seen].max()
        picture[seen] = 40 + 170 * (depth[seen] - low) / max(high - low, 1e-12)
    image = Image.fromarray(picture.astype(np.uint8)).resize((size, size))
    return np.repeat(np.asarray(image)[:, :, None], 3, axis=2)
