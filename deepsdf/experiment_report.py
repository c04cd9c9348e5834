"""An experiment's report: ``index.html`` and ``summary.json`` (``deepsdf report``, and the
demo's ``OUT/report``).

Every held-out shape appears with its reconstruction and, where a completion folder is given,
its one-view completion, each with its own metrics and retrieval's beside them; the summary
rows are computed over all of them (no chosen example).  The page has a per-shape table with
units and which direction is better, links to every mesh and CSV, labelled pictures, an
interactive 3D view (offline, :mod:`deepsdf.viewer`: each shape's meshes side by side at one
scale), the interpolation strip where one is given, the training curve, and the run's
configuration, stage wall-times and machine.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
from pathlib import Path

import numpy as np

from deepsdf_preprocess.errors import InputError

from .metrics import METRIC_TABLE, Verdict
from .outputs import CompletionFolder, InterpolationFolder, ReportFolder

__all__ = ["write_report", "read_completion", "METRIC_LEGEND"]

#: metric -> (label, unit, better), for the tables' headers: read off the one table,
#: :data:`deepsdf.metrics.METRIC_TABLE`.
METRIC_LEGEND = {name: (metric.label, metric.unit, metric.better)
                 for name, metric in METRIC_TABLE.items()}

WHY = ("Why can a blobby reconstruction beat retrieval? The metrics compare surfaces point by "
       "point: a fitted shape that is in the right place everywhere, with soft details, is "
       "nearer the truth than a crisp training shape with its legs or top elsewhere. The "
       "pictures show what the metrics do not: thin parts a small model, trained for minutes "
       "on a CPU, cannot yet resolve.")


def _cell(value: str):
    """A CSV cell: a number where it reads as one, else the text."""
    try:
        return float(value) if value != "" else value
    except ValueError:
        return value


def _rows(path) -> list:
    """The rows of a metrics CSV this project wrote, numbers as floats."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            text = stream.read()
        raw = list(csv.DictReader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path} is not a metrics table this project wrote: {error}") from None
    if text and not text.endswith("\n"):  # this project ends every row with a newline
        raise InputError(f"{path} ends inside a row (a table cut short); rerun the command "
                         "that wrote it")
    for number, row in enumerate(raw, start=2):  # line 1 is the header
        if None in row or None in row.values():  # more or fewer cells than the header
            raise InputError(f"{path}, line {number}: {'more' if None in row else 'fewer'} "
                             "cells than the header (a table cut short or edited); rerun the "
                             "command that wrote it")
    rows = [{k: _cell(v) for k, v in row.items()} for row in raw]
    if rows and "instance" not in rows[0]:
        raise InputError(f"{path} has no 'instance' column: not a metrics table of this "
                         "project")
    seen = set()
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if row["instance"] in seen:
            raise InputError(f"{path}, line {number}: {row['instance']} is listed twice")
        seen.add(row["instance"])
        for column, value in row.items():
            metric = _metric_of(column)
            if metric is not None and value != "":
                _check_value(value, metric, f"line {number}, {column}", path)
    return rows


def _metric_of(column) -> str | None:
    """The metric a table column holds (``chamfer``, ``retrieval_code_chamfer``, ...)."""
    for prefix in ("retrieval_code_", "retrieval_oracle_", "retrieval_", ""):
        if isinstance(column, str) and column.startswith(prefix) \
                and column[len(prefix):] in METRIC_TABLE:
            return column[len(prefix):]
    return None


def _metric_maximum(name: str) -> float:
    """The largest value metric ``name`` takes (the 0-1 ones of the metric table: 1)."""
    return 1.0 if METRIC_TABLE[name].unit.endswith("0-1") else math.inf


def _check_value(value, metric: str, where: str, source) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value <= _metric_maximum(metric)):
        raise InputError(f"{source}: {where} is {value!r}; {metric} is a finite number in "
                         f"[0, {_metric_maximum(metric):g}] (not a file this project wrote, "
                         "or an edited one: rerun the command)")


def _check_block(block, source, where: str) -> None:
    """A summary section: ``{metric: {"mean", "median"}}``."""
    if not isinstance(block, dict):
        raise InputError(f"{source}: {where} is not a section of metrics (rerun the command)")
    for name, stats in block.items():
        if name not in METRIC_TABLE or not isinstance(stats, dict):
            raise InputError(f"{source}: {where}.{name} is not a metric's mean and median")
        for key in ("mean", "median"):
            _check_value(stats.get(key), name, f"{where}.{name}.{key}", source)


def _check_verdict(entry, source, where: str) -> None:
    """A ``versus_*`` block, as :meth:`deepsdf.metrics.Verdict.to_dict` writes it."""
    try:
        judged = Verdict.from_dict(entry)
        valid = (judged.metric in METRIC_TABLE and isinstance(judged.shapes, int)
                 and isinstance(judged.won, int) and 0 <= judged.won <= judged.shapes
                 and len(judged.mean) == len(judged.median) == 2
                 and isinstance(judged.word, str))
        if valid:
            for value in (*judged.mean, *judged.median):
                _check_value(value, judged.metric, where, source)
    except (KeyError, TypeError, ValueError, AttributeError):
        valid = False
    if not valid:
        raise InputError(f"{source}: {where} is not a verdict this project wrote (rerun the "
                         "command)")


def _check_completion_summary(payload, source) -> dict:
    """A completion run's summary as ``complete --virtual-scan`` writes it, else one line."""
    if not (isinstance(payload.get("shapes"), int) and not isinstance(payload["shapes"], bool)
            and payload["shapes"] >= 0 and isinstance(payload.get("no_surface", []), list)
            and all(isinstance(key, str) for key in payload.get("no_surface", []))):
        raise InputError(f"{source} is not a completion summary of `deepsdf complete "
                         "--virtual-scan` (rerun it)")
    for section in ("completion", "retrieval"):
        if section in payload:
            _check_block(payload[section], source, section)
    if "versus_retrieval" in payload:
        _check_verdict(payload["versus_retrieval"], source, "versus_retrieval")
    return payload


def _header(name: str) -> str:
    metric = METRIC_TABLE[name]
    return f"{metric.label} ({metric.arrow})"


INTERPOLATION_NOTE = (
    "What the strip shows: the decoder's shapes along a great-circle path between two "
    "training codes, not a morph of the meshes. Parts that do not correspond (a chair's back, "
    "a table's wider top) fade in and out, so frames in between can come apart into pieces: "
    "with the demo's model, 35% of the in-between frames on 8 paths were one piece, against "
    "100% of the training shapes at their ends, and neither smaller initial codes nor a ten "
    "times stronger prior made them whole (docs/benchmarks.md, 'The shape space').")


def read_completion(folder) -> tuple[list, dict]:
    """(rows, summary) of a completion folder that ``deepsdf complete --virtual-scan`` wrote
    (``completion.csv``, ``summary.json``)."""
    import json

    run = CompletionFolder(folder)
    table, summary = run.table, run.summary
    if not run.holds_a_run():
        raise InputError(f"{run.root} holds no {table.name} and {summary.name} of `deepsdf "
                         "complete --virtual-scan`")
    try:
        payload = json.loads(summary.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{summary} is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InputError(f"{summary} is not a completion summary (not a JSON object)")
    _check_sealed(payload, summary, table, "deepsdf complete --virtual-scan")
    return _rows(table), _check_completion_summary(payload, summary)


def _check_sealed(summary: dict, source, table, command: str) -> None:
    """Refuse a summary edited since it was written, or a table that is not the one it was
    written with (summaries of earlier versions, without these fields, are read as found)."""
    from deepsdf_preprocess import contract, provenance

    if not isinstance(summary, dict):
        return  # the summary's own check says what it is not
    problem = contract.seal_problem(summary, source)
    if problem is None and isinstance(summary.get("table_sha256"), str) and table.is_file() \
            and provenance.sha256_of(table) != summary["table_sha256"]:
        problem = f"{table} is not the table {source.name} was written with (changed since)"
    if problem:
        raise InputError(f"{problem}: rerun `{command}`")


def _report_folder(folder, replace: bool) -> ReportFolder:
    """The report's folder; refused when it is a file, or when it holds files other than an
    earlier report's (without ``replace``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder for the report")
    report = ReportFolder(folder)
    if folder.is_dir() and not report.marker.is_file():
        # with replace (the demo's folder, its interpolation inside): other files may stay,
        # but the report's own names must not hold files it did not write
        theirs = [p for p in report.own_paths() if os.path.lexists(p)] if replace else \
            list(folder.iterdir())
        if theirs:
            raise InputError(f"{folder} holds {theirs[0].name} (it is not a report folder "
                             "this command wrote); choose a new or empty folder")
    return report


def _check_evaluation(evaluation, source) -> dict:
    """An evaluation summary as ``deepsdf evaluate`` writes it, else one line."""
    if not (isinstance(evaluation, dict) and isinstance(evaluation.get("reconstruction"), dict)
            and "chamfer" in evaluation["reconstruction"]
            and isinstance(evaluation.get("shapes"), int)
            and not isinstance(evaluation["shapes"], bool) and evaluation["shapes"] >= 1):
        raise InputError(f"{source} is not an evaluation summary of `deepsdf evaluate` "
                         "(rerun it)")
    for section in ("reconstruction", "retrieval_code", "retrieval_oracle"):
        if section in evaluation:
            _check_block(evaluation[section], source, section)
    for name in ("versus_retrieval_code", "versus_retrieval_oracle"):
        if name in evaluation:
            _check_verdict(evaluation[name], source, name)
    return evaluation


def _check_made_from(layout, trained, what: str) -> None:
    """Refuse a completion or interpolation folder another model (or an earlier checkpoint of
    this one) made: its marker records the checkpoint it was made from."""
    made = layout.record().get("checkpoint")
    if made != trained.checkpoint_identity:
        raise InputError(f"{layout.root} is not {what} of this model's checkpoint "
                         f"{trained.checkpoint}" + (f" (it was made from epoch "
                                                    f"{made.get('epoch')})"
                                                    if isinstance(made, dict) else
                                                    " (it records no checkpoint)")
                         + f"; rerun `deepsdf {layout.COMMAND}`")


def _evaluation(trained, evaluation: dict | None) -> tuple[dict, list]:
    """(summary, per-shape rows) of the experiment's evaluation, checked: this model's
    checkpoint's, every number in its metric's range, the table and summary agreeing."""
    import json

    if evaluation is None:
        if not trained.evaluation_summary.is_file():
            raise InputError(f"{trained.folder} has no evaluation ({trained.evaluation_summary}"
                             "): run `deepsdf reconstruct` and `deepsdf evaluate` first")
        try:
            evaluation = json.loads(trained.evaluation_summary.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            evaluation = None
        _check_sealed(evaluation, trained.evaluation_summary, trained.evaluation_table,
                      "deepsdf evaluate")
        evaluation = _check_evaluation(evaluation, trained.evaluation_summary)
        stale = trained.evaluation_stale(evaluation)
        if stale is not None:
            raise InputError(f"{trained.evaluation_summary} is not this model's evaluation: "
                             f"{stale}; rerun `deepsdf reconstruct --skip` and `deepsdf "
                             "evaluate`")
    if not trained.evaluation_table.is_file():
        raise InputError(f"{trained.evaluation_table} is missing: run `deepsdf evaluate` first")
    shapes = _rows(trained.evaluation_table)
    if len(shapes) != evaluation["shapes"]:
        raise InputError(f"{trained.evaluation_table} lists {len(shapes)} shapes and its "
                         f"summary {evaluation['shapes']}: rerun `deepsdf evaluate`")
    return evaluation, shapes


def _completion(trained, completion, shapes: list) -> tuple[list, dict]:
    """(rows of the evaluated shapes, summary) of a completion run this model made."""
    rows, completed = read_completion(completion)
    _check_made_from(CompletionFolder(completion), trained, "a completion")
    evaluated = {row["instance"] for row in shapes}
    rows = [row for row in rows if row.get("instance") in evaluated]
    if not rows:
        raise InputError(f"{completion} holds no completion of this experiment's evaluated "
                         "shapes (another experiment's, or an empty run?)")
    return rows, completed


def _path_pictures(trained, interpolation, ends) -> list:
    """[(picture, caption)] of an interpolation this model made."""
    path = InterpolationFolder(interpolation)
    _check_made_from(path, trained, "an interpolation")
    pictures = [(picture, caption) for picture, caption in (
        (path.strip, f"from {ends[0]} (left) to {ends[1]} (right)" if ends
         else "the path, left to right"),
        (path.animation, "the same path, animated")) if picture.is_file()]
    if not pictures:
        raise InputError(f"{interpolation} holds no {path.strip.name} or "
                         f"{path.animation.name} of `deepsdf interpolate`")
    return pictures


def write_report(folder, experiment, *, evaluation: dict | None = None, completion=None,
                 interpolation=None, title: str | None = None, timings: dict | None = None,
                 picture_size: int = 256, replace: bool = False,
                 ends: tuple | None = None) -> dict:
    """Write ``folder/index.html`` and ``folder/summary.json``; returns the summary.

    Parameters
    ----------
    folder : path
        The report's folder (created); pictures and the viewer's scripts go beside the page.
    experiment : Experiment or path
        A trained, reconstructed and evaluated experiment (``deepsdf evaluate`` ran).
    evaluation : dict, optional
        :func:`deepsdf.evaluate.evaluate_split`'s summary (default: the experiment's
        ``Evaluation/<checkpoint>/summary.json``).
    completion : path, optional
        A folder of ``deepsdf complete --virtual-scan`` on the same shapes.
    interpolation : path, optional
        A folder of ``deepsdf interpolate`` (its ``strip.png`` and ``interpolation.gif``).
    timings : dict, optional
        Stage name -> seconds, for the run's table.
    ends : (str, str), optional
        The interpolation's first and last instance, for its caption.
    replace : bool
        Write into ``folder`` although it holds other files (the demo's, whose interpolation
        is already there); otherwise only a new, empty or earlier report folder is written.
    """
    from deepsdf.experiment import Experiment
    from deepsdf.report import Html, Report, link
    from deepsdf_preprocess import contract

    out = _report_folder(folder, replace)
    trained = Experiment.of(experiment)
    evaluation, shapes = _evaluation(trained, evaluation)
    rows, completed = _completion(trained, completion, shapes) if completion else ([], {})
    path_pictures = _path_pictures(trained, interpolation, ends) if interpolation else []
    out.tree.folder(create=True)
    # claimed before anything is written: a report stopped part-way (a kill, a full disk)
    # is this command's to replace on its rerun, never "another's" (atomic: never written
    # through a hard link planted there)
    contract.write_json(out.marker, {"written_by": "deepsdf report"})
    relative = out.link
    reconstruction_verdict = evaluation.get("versus_retrieval_code")
    completion_verdict = completed.get("versus_retrieval")

    page = Report(title or f"deepsdf: {trained.folder.name}")
    page.paragraph(_opening(len(trained.model.instance_ids), len(shapes), evaluation,
                            reconstruction_verdict, completion_verdict if rows else None,
                            bool(rows)))
    page.paragraph(WHY, css="note")
    files = [link("reconstruction metrics (CSV)", relative(trained.evaluation_table))]
    if rows:
        files.append(link("completion metrics (CSV)", relative(CompletionFolder(completion).table)))
    page.paragraph(Html("Files: " + ", ".join(
        files + [link(out.summary.name, relative(out.summary))])))
    _summary_table(page, len(shapes), evaluation, completed)
    by_key = {row["instance"]: row for row in rows}
    completed_run = CompletionFolder(completion) if completion else None
    _per_shape_table(page, trained, shapes, by_key, completed_run, relative)
    _pictures(page, out, trained, shapes, by_key, completed_run, picture_size)
    if path_pictures:
        page.heading("Interpolation (slerp between two training codes)")
        page.paragraph(INTERPOLATION_NOTE, css="note")
        for picture, caption in path_pictures:
            page.picture(relative(picture), caption)
    _shape_space_section(page, out, trained, shapes)
    _run_section(page, out, trained, timings)
    page.write(out.index)

    done, answered = completed.get("completion", {}), completed.get("retrieval", {})
    summary = {"held_out_shapes": evaluation["shapes"],
               "mean_chamfer": evaluation["reconstruction"]["chamfer"]["mean"],
               "retrieval_mean_chamfer": evaluation.get("retrieval_code", {})
               .get("chamfer", {}).get("mean"),
               "versus_retrieval": reconstruction_verdict}
    if rows:
        summary["completion"] = {
            "shapes": len(rows), "chamfer": done.get("chamfer", {}).get("mean"),
            "retrieval_chamfer": answered.get("chamfer", {}).get("mean"),
            "chamfer_unseen": done.get("chamfer_unseen", {}).get("mean"),
            "versus_retrieval": completion_verdict,
            "no_surface": list(completed.get("no_surface", []))}
    if timings:
        summary["timings"] = {k: round(v, 2) for k, v in timings.items()}
    summary["report"] = str(out.index)
    contract.write_json(out.summary, summary)
    return summary


def _opening(trained: int, held_out: int, evaluation: dict, reconstruction_verdict,
             completion_verdict, completed: bool) -> str:
    """The page's first sentence: the verdicts, on mean, median and shapes won."""
    text = (f"{trained} training shapes, {held_out} held-out shapes never seen in training. "
            "Reconstructed from their SDF samples, they "
            + (Verdict.from_dict(reconstruction_verdict).line(
                "retrieval of the nearest training code", plural=True)
               if reconstruction_verdict else
               f"score a mean Chamfer of {evaluation['reconstruction']['chamfer']['mean']:.3g}"))
    if completed:
        text += ("; completed from one depth view each, they "
                 + (Verdict.from_dict(completion_verdict).line(
                     "retrieval of the training shape nearest to the scan", plural=True)
                    if completion_verdict else "have no retrieval baseline"))
    return text + "."


def _summary_table(page, count: int, evaluation: dict, completed: dict) -> None:
    page.heading(f"Summary over all {count} held-out shapes")
    names = ("chamfer", "chamfer_l1", "f_score", "normal_consistency", "iou")
    rows = []
    for section, label in (("reconstruction", "DeepSDF reconstruction"),
                           ("retrieval_code", "retrieval: the nearest training code"),
                           ("retrieval_oracle", "retrieval: oracle, nearest by Chamfer")):
        block = evaluation.get(section, {})
        rows.append([label] + [_mean_median(block.get(m)) for m in names])
    if completed:
        for section, label in (("completion", "DeepSDF one-view completion"),
                               ("retrieval", "retrieval: the training shape nearest to the "
                                             "scan")):
            block = completed.get(section, {})
            rows.append([label] + [_mean_median(block.get(m)) for m in names])
    page.table(["mean / median"] + [_header(m) for m in names], rows,
               caption="; ".join(f"{METRIC_LEGEND[m][0]}: {METRIC_LEGEND[m][1]}, "
                                 f"{METRIC_LEGEND[m][2]} is better" for m in names))


def _per_shape_table(page, trained, shapes: list, completed: dict,
                     completion: CompletionFolder | None, relative) -> None:
    from deepsdf.report import Html, link

    page.heading("Per shape")
    per_shape = ("chamfer", "chamfer_l1", "f_score", "normal_consistency", "iou", "emd")
    table = []
    for row in shapes:
        key = row["instance"]
        paths = trained.reconstruction(key)
        finished = completed.get(key, {})
        files = [link("reconstruction.ply", relative(paths["original"]))
                 if paths["original"].is_file() else "no surface"]
        # only shapes the completion table lists: an earlier run's meshes may lie beside
        completion_mesh = completion.shape(key)["mesh"] if completion and key in completed \
            else None
        if completion_mesh is not None and completion_mesh.is_file():
            files.append(link("completion.ply", relative(completion_mesh)))
        cells = [row.get(m, "") for m in per_shape] + [row.get("retrieval_code_chamfer", "")]
        if completed:
            cells += [finished.get("chamfer", ""), finished.get("retrieval_chamfer", ""),
                      finished.get("f_score", ""), finished.get("chamfer_unseen", "")]
        table.append([f"{key.split('/')[-1]} ({key.split('/')[1]})"] + cells
                     + [Html(" ".join(files))])
    header = ["shape"] + [_header(m) for m in per_shape] + ["retrieval " + _header("chamfer")]
    caption = ("Reconstruction columns first, with the Chamfer of retrieval (the training "
               "shape of the nearest fitted code) beside them")
    if completed:
        header += ["completion " + _header("chamfer"), "retrieval for the scan "
                   + _header("chamfer"), "completion " + _header("f_score"),
                   "completion " + _header("chamfer_unseen")]
        caption += ("; then the one-view completion, with the Chamfer of the training shape "
                    "nearest to the scan")
    page.table(header + ["meshes (original frame)"], table,
               caption=caption + ". " + "; ".join(
                   f"{METRIC_LEGEND[m][0]}: {METRIC_LEGEND[m][1]}"
                   for m in (*per_shape, "chamfer_unseen")))


def _pictures(page, out: ReportFolder, trained, shapes: list, completed: dict,
              completion: CompletionFolder | None, picture_size: int) -> None:
    """A picture strip per shape, and the 3D view of them all."""
    import trimesh

    from deepsdf.pictures import default_camera, render_meshes, save_png, tile
    from deepsdf.viewer import write_viewer
    from deepsdf_preprocess.normalize import to_normalized

    page.heading("Pictures")
    camera = default_camera(picture_size)
    sources = trained.data
    viewer_meshes = {}
    for row in shapes:
        key = row["instance"]
        name = key.split("/")[-1]
        class_name = key.split("/")[1]
        files = sources.instance(key)
        offset, scale = files.normalization()
        truth = sources.normalized_source_mesh(key)
        recon_path = trained.reconstruction(key)["mesh"]
        recon = trimesh.load(recon_path, process=False) if recon_path.is_file() else None
        finished = None
        completion_path = (completion.shape(key)["mesh"] if completion and key in completed
                           else None)
        if completion_path is not None and completion_path.is_file():
            finished = trimesh.load(completion_path, process=False)
            finished.vertices = to_normalized(finished.vertices, offset, scale)
        other = completed.get(key, {}).get("retrieval_instance") or row.get(
            "retrieval_code_instance")
        retrieved = sources.normalized_source_mesh(other) if other else None
        depth = (_depth_picture(files.scan()["depth"], picture_size)
                 if completion and files.partial_scan.is_file() else None)
        meshes = [truth, recon] + ([finished] if completion else []) + [retrieved]
        images = render_meshes(meshes, camera)
        strip = images[:2] + ([depth] if depth is not None else []) + images[2:]
        picture = out.shape_picture(class_name, name)
        save_png(picture, tile(strip))
        page.picture(out.link(picture),
                     f"{name} ({class_name}): ground truth | reconstruction from its "
                     "SDF samples" + (" | the one depth view" if depth is not None else "")
                     + (" | completion from that view" if completion else "")
                     + " | retrieved training shape"
                     + (f" ({other.split('/')[-1]}, {other.split('/')[1]})" if other
                        else ""))
        viewer_meshes[f"{name} ({class_name})"] = {
            "ground truth": truth, "reconstruction": recon, "completion": finished}
    page.heading("Interactive 3D view")
    page.raw(write_viewer(out.root, viewer_meshes))


def _shape_space_section(page, out: ReportFolder, trained, shapes: list) -> None:
    """The codes on their first two principal directions (a static picture that works
    offline), and how to walk the space live with ``deepsdf explore``."""
    from deepsdf.code_space import principal_directions
    from deepsdf.experiment import read_code
    from deepsdf.report import code_map

    model = trained.model
    codes = model.codes.detach().double().cpu().numpy()
    if len(codes) < 2:
        return
    mean, directions, spreads = principal_directions(codes)
    if len(spreads) == 0:
        return

    def place(code, name, held):
        values = (np.asarray(code, np.float64) - mean) @ directions[:2].T / spreads[:2]
        return (float(values[0]), float(values[1]) if len(values) > 1 else 0.0,
                name.split("/")[-2] if name.count("/") >= 1 else "", held)

    points = [place(code, name, False) for code, name in zip(codes, model.instance_ids)]
    for shape in shapes:
        path = trained.reconstruction(shape["instance"])["code"]
        if path.is_file():
            points.append(place(read_code(path, codes.shape[1]).double().numpy(),
                                shape["instance"], True))
    page.heading("The shape space")
    code_map(points, out.code_map)
    page.picture(out.link(out.code_map), "the codes on their first two principal directions, "
                 "in standard deviations: training shapes filled, held-out shapes' fitted "
                 "codes as rings")
    page.paragraph(f"Walk it in a browser: deepsdf explore {trained.folder} (pip install "
                   "'deepsdf[explore]'): click a shape, drag through the map, move sliders "
                   "along the principal directions, interpolate, draw random shapes, export.",
                   css="note")


def _run_section(page, out: ReportFolder, trained, timings: dict | None) -> None:
    import torch

    from deepsdf.report import training_curve

    payload = trained.model.payload
    history = payload.get("history", [])
    page.heading("Training curve")
    if history:
        training_curve(history, out.training_curve)
        page.picture(out.link(out.training_curve), "mean loss per epoch")
    page.heading("The run")
    if timings:
        page.table(["stage", "seconds"], [[name, round(seconds, 1)]
                                          for name, seconds in timings.items()],
                   caption="wall-clock time of each stage of this run (a resumed stage is "
                           "fast)")
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
