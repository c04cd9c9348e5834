"""The demo's report: ``OUT/report/index.html`` and ``summary.json``.

Every held-out shape appears with its reconstruction and its one-view completion, each with its
own metrics; the summary rows are computed over all of them (no chosen example).  The page has
a per-shape table with units and which direction is better, links to every mesh and CSV,
labelled pictures, an interactive 3D view (offline, :mod:`deepsdf.viewer`), the interpolation,
the training curve, and the run's configuration, stage wall-times and machine.
"""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

import numpy as np

from .metrics import METRIC_TABLE, Verdict

__all__ = ["write_demo_report", "METRIC_LEGEND"]

#: metric -> (label, unit, better), for the tables' headers: read off the one table,
#: :data:`deepsdf.metrics.METRIC_TABLE`.
METRIC_LEGEND = {name: (metric.label, metric.unit, metric.better)
                 for name, metric in METRIC_TABLE.items()}

WHY = ("Why can a blobby reconstruction beat retrieval? The metrics compare surfaces point by "
       "point: a fitted shape that is in the right place everywhere, with soft details, is "
       "nearer the truth than a crisp training shape with its legs or top elsewhere. The "
       "pictures show what the metrics do not: thin parts a small model, trained for minutes "
       "on a CPU, cannot yet resolve.")


def _rows(path) -> list:
    with open(path, newline="") as stream:
        return [{k: (v if k.endswith("instance") or v == "" else float(v))
                 for k, v in row.items()} for row in csv.DictReader(stream)]


def _header(name: str) -> str:
    metric = METRIC_TABLE[name]
    return f"{metric.label} ({metric.arrow})"


def write_demo_report(out: Path, *, data: Path, experiment, evaluation: dict,
                      completion, ends: tuple, settings, timings: dict) -> dict:
    """Write ``out/report``; returns the summary (also ``out/report/summary.json``).

    Parameters
    ----------
    experiment : Experiment or path
        The trained experiment.
    evaluation : dict
        :func:`deepsdf.evaluate.evaluate_split`'s summary of the held-out reconstructions.
    completion : CompletionReport
        :func:`deepsdf.completion.complete_split` of the same shapes, one view each.
    timings : dict
        Stage name -> seconds.
    """
    import trimesh

    from deepsdf.experiment import Experiment
    from deepsdf.pictures import default_camera, render_meshes, save_png, tile
    from deepsdf.report import Html, Report, link, training_curve
    from deepsdf.viewer import write_viewer
    from deepsdf_preprocess import contract
    from deepsdf_preprocess.normalize import to_normalized

    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    relative = lambda path: os.path.relpath(path, folder)  # noqa: E731
    camera = default_camera(settings.picture_size)
    trained = Experiment.of(experiment, data=data)
    sources = trained.data
    payload = trained.model.payload
    history = payload.get("history", [])
    metrics_csv = trained.evaluation_table
    completion_csv = out / "completion" / "completion.csv"
    shapes = _rows(metrics_csv)
    completed = {row["instance"]: row for row in completion.rows}
    ours_mean = evaluation["reconstruction"]["chamfer"]["mean"]
    retrieval_mean = evaluation["retrieval_code"]["chamfer"]["mean"]
    chamfer = METRIC_TABLE["chamfer"]
    beats = chamfer.wins(ours_mean, retrieval_mean)
    done = completion.summary.get("completion", {})
    answered = completion.summary.get("retrieval", {})
    completion_beats = bool(done and answered
                            and chamfer.wins(done["chamfer"]["mean"], answered["chamfer"]["mean"]))
    # The sentences rest on mean, median and shapes won together (metrics.verdict).
    reconstruction_verdict = evaluation.get("versus_retrieval_code")
    completion_verdict = completion.summary.get("versus_retrieval")

    page = Report("deepsdf demo: procedural chairs and tables")
    page.paragraph(
        f"{len(trained.model.instance_ids)} training shapes, {len(shapes)} held-out "
        f"shapes never seen in training. Reconstructed from their SDF samples, they "
        + (Verdict.from_dict(reconstruction_verdict).line("retrieval of the nearest training "
                                                          "code", plural=True)
           if reconstruction_verdict else f"score a mean Chamfer of {ours_mean:.3g}")
        + "; completed from one depth view each, they "
        + (Verdict.from_dict(completion_verdict).line("retrieval of the training shape "
                                                      "nearest to the scan", plural=True)
           if completion_verdict else "have no retrieval baseline") + ".")
    page.paragraph(WHY, css="note")

    page.paragraph(Html("Files: " + ", ".join([
        link("reconstruction metrics (CSV)", relative(metrics_csv)),
        link("completion metrics (CSV)", relative(completion_csv)),
        link("summary.json", "summary.json")])))

    page.heading(f"Summary over all {len(shapes)} held-out shapes")
    names = ("chamfer", "chamfer_l1", "f_score", "normal_consistency", "iou")
    rows = []
    for section, label in (("reconstruction", "DeepSDF reconstruction (Gauss-Newton fit)"),
                           ("retrieval_code", "retrieval: the nearest training code"),
                           ("retrieval_oracle", "retrieval: oracle, nearest by Chamfer")):
        block = evaluation.get(section, {})
        rows.append([label] + [_mean_median(block.get(m)) for m in names])
    for block, label in ((done, "DeepSDF one-view completion"),
                         (answered, "retrieval: the training shape nearest to the scan")):
        rows.append([label] + [_mean_median(block.get(m)) for m in names])
    page.table(["mean / median"] + [_header(m) for m in names], rows,
               caption="; ".join(f"{METRIC_LEGEND[m][0]}: {METRIC_LEGEND[m][1]}, "
                                 f"{METRIC_LEGEND[m][2]} is better" for m in names))

    page.heading("Per shape")
    per_shape = ("chamfer", "chamfer_l1", "f_score", "normal_consistency", "iou", "emd")
    table = []
    for row in shapes:
        key = row["instance"]
        paths = trained.reconstruction(key)
        finished = completed.get(key, {})
        completion_mesh = out / "completion" / "Meshes" / f"{key}.ply"
        files = [link("reconstruction.ply", relative(paths["original"]))
                 if paths["original"].is_file() else "no surface"]
        if completion_mesh.is_file():
            files.append(link("completion.ply", relative(completion_mesh)))
        table.append([f"{key.split('/')[-1]} ({key.split('/')[1]})"]
                     + [row.get(m, "") for m in per_shape]
                     + [row.get("retrieval_code_chamfer", ""),
                        finished.get("chamfer", ""), finished.get("retrieval_chamfer", ""),
                        finished.get("f_score", ""), finished.get("chamfer_unseen", "")]
                     + [Html(" ".join(files))])
    page.table(["shape"] + [_header(m) for m in per_shape]
               + ["retrieval " + _header("chamfer"),
                  "completion " + _header("chamfer"), "retrieval for the scan "
                  + _header("chamfer"), "completion " + _header("f_score"),
                  "completion " + _header("chamfer_unseen"), "meshes (original frame)"],
               table, caption="Reconstruction columns first, with the Chamfer of retrieval "
               "(the training shape of the nearest fitted code) beside them; then the "
               "one-view completion, with the Chamfer of the training shape nearest to the "
               "scan. "
               + "; ".join(f"{METRIC_LEGEND[m][0]}: {METRIC_LEGEND[m][1]}"
                           for m in (*per_shape, "chamfer_unseen")))

    page.heading("Pictures")
    viewer_meshes = {}
    for row in shapes:
        key = row["instance"]
        name = key.split("/")[-1]
        files = sources.instance(key)
        offset, scale = files.normalization()
        truth = sources.normalized_source_mesh(key)
        recon_path = trained.reconstruction(key)["mesh"]
        recon = trimesh.load(recon_path, process=False) if recon_path.is_file() else None
        completion_path = out / "completion" / "Meshes" / f"{key}.ply"
        finished = None
        if completion_path.is_file():
            finished = trimesh.load(completion_path, process=False)
            finished.vertices = to_normalized(finished.vertices, offset, scale)
        other = completed.get(key, {}).get("retrieval_instance") or row.get(
            "retrieval_code_instance")
        retrieved = sources.normalized_source_mesh(other) if other else None
        depth = (_depth_picture(files.scan()["depth"], settings.picture_size)
                 if files.partial_scan.is_file() else None)
        images = render_meshes([truth, recon, finished, retrieved], camera)
        strip = images[:2] + ([depth] if depth is not None else []) + images[2:]
        save_png(folder / "shapes" / f"{name}.png", tile(strip))
        page.picture(f"shapes/{name}.png",
                     f"{name} ({key.split('/')[1]}): ground truth | reconstruction from its "
                     "SDF samples" + (" | the one depth view" if depth is not None else "")
                     + " | completion from that view | retrieved training shape"
                     + (f" ({other.split('/')[-1]})" if other else ""))
        viewer_meshes[f"{name} ({key.split('/')[1]})"] = {
            "ground truth": truth, "reconstruction": recon, "completion": finished}

    page.heading("Interactive 3D view")
    page.raw(write_viewer(folder, viewer_meshes))

    page.heading("Interpolation from a chair to a table (slerp)")
    page.picture("interpolation/strip.png", f"from {ends[0]} (left) to {ends[1]} (right)")
    page.picture("interpolation/interpolation.gif", "the same path, animated")

    page.heading("Training curve")
    if history:
        training_curve(history, folder / "training_curve.png")
        page.picture("training_curve.png", "mean loss per epoch")

    page.heading("The run")
    import torch

    page.table(["stage", "seconds"], [[name, round(seconds, 1)]
                                      for name, seconds in timings.items()],
               caption="wall-clock time of each stage of this run (a resumed stage is fast)")
    page.table(["machine", ""], [["platform", platform.platform()],
                                 ["processor", platform.processor() or platform.machine()],
                                 ["cores", os.cpu_count()],
                                 ["Python", platform.python_version()],
                                 ["torch", torch.__version__],
                                 ["device", str(trained.device)]])
    spec = payload.get("config", {})
    page.table(["setting", "value"],
               [[key, _short(value)] for key, value in spec.items() if key != "Description"],
               caption="the model's resolved configuration (specs.json keys)")
    page.write(folder)

    summary = {"held_out_shapes": evaluation["shapes"],
               "mean_chamfer": ours_mean, "retrieval_mean_chamfer": retrieval_mean,
               "beats_retrieval_on_mean": bool(beats),
               "versus_retrieval": reconstruction_verdict,
               "completion": {"shapes": len(completion.rows),
                              "chamfer": done.get("chamfer", {}).get("mean"),
                              "retrieval_chamfer": answered.get("chamfer", {}).get("mean"),
                              "chamfer_unseen": done.get("chamfer_unseen", {}).get("mean"),
                              "beats_retrieval_on_mean": completion_beats,
                              "versus_retrieval": completion_verdict,
                              "no_surface": list(completion.no_surface)},
               "timings": {k: round(v, 2) for k, v in timings.items()},
               "report": str(folder / "index.html")}
    contract.write_json(folder / "summary.json", summary)
    return summary


def _mean_median(block) -> str:
    if not block:
        return ""
    return f"{block['mean']:.3g} / {block['median']:.3g}"


def _short(value) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 90 else text[:87] + "..."


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
