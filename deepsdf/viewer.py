"""An interactive 3D view of meshes that works offline from a folder alone (no CDN, no server).

:func:`write_viewer` writes ``viewer.js`` (a small WebGL viewer of this project: orbit by
dragging, zoom with the wheel, flat Lambert shading) and ``meshes.js`` (the meshes, as a
script that assigns ``window.DEEPSDF_MESHES``: a ``<script src>`` loads from ``file://``,
where ``fetch`` of a local file is refused), and returns the HTML to put in a page.

The view shows one *group* at a time (a shape: its ground truth, reconstruction,
completion, ...), its meshes side by side at **one scale** (the group's common frame), so
that sizes compare.  The payload is small: each mesh is simplified by vertex clustering on a
grid of :data:`GRID` cells across the group, positions are 16-bit integers over the group's
frame and indices 16- or 32-bit integers, both base64 (about 12 bytes per triangle).

The viewer reports on the page itself, for tests and for curious users: after its first frame
the canvas carries ``data-drawn`` (how many of its pixels differ from the background) and the
page body ``data-viewer-errors`` (messages of any script error, empty when none).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from deepsdf_preprocess.contract import atomic_path

__all__ = ["write_viewer", "simplified", "group_payload", "decode_mesh", "VIEWER_JS", "GRID"]

#: Vertex-clustering cells across a group's bounding sphere's diameter.
GRID = 96
#: Largest 16-bit position value.
_LEVELS = 65535


def simplified(vertices: np.ndarray, faces: np.ndarray, cell: float):
    """(vertices, faces) of a mesh simplified by vertex clustering: vertices in one cubic cell
    of size ``cell`` merge into their mean; faces that collapse (two corners in one cell) or
    repeat are dropped.  Preserves the shape to within about one cell."""
    keys = np.floor(vertices / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, cluster, vertices)
    merged /= counts[:, None]
    remapped = cluster[faces]
    keep = ((remapped[:, 0] != remapped[:, 1]) & (remapped[:, 1] != remapped[:, 2])
            & (remapped[:, 0] != remapped[:, 2]))
    remapped = remapped[keep]
    if len(remapped):
        _, first = np.unique(np.sort(remapped, axis=1), axis=0, return_index=True)
        remapped = remapped[np.sort(first)]
    used, compact = np.unique(remapped.reshape(-1), return_inverse=True)
    return merged[used], compact.reshape(-1, 3)


def _finite(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of ``mesh`` without non-finite vertices and the faces that use
    them."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    good = np.all(np.isfinite(vertices), axis=1)
    if good.all():
        return vertices, faces
    if not good.any():
        return vertices[:0], faces[:0]
    vertices = vertices.copy()
    vertices[~good] = vertices[good][0]  # unused now; kept finite and inside the bounds
    return vertices, faces[np.all(good[faces], axis=1)]


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"))
                            .tobytes()).decode("ascii")


def group_payload(meshes: dict, *, grid: int = GRID) -> dict:
    """The JSON payload of one group ``{label: trimesh.Trimesh}`` (``None`` and empty meshes
    skipped): every mesh in the group's common frame (centre of the union of their bounding
    boxes, radius of the farthest vertex), simplified and quantized."""
    present = {}
    for label, mesh in meshes.items():
        if mesh is None or not len(mesh.faces):
            continue
        vertices, faces = _finite(mesh)
        if len(faces):
            present[label] = (vertices, faces)
    if not present:
        return {"labels": [], "meshes": []}
    # One frame for the group, computed on coordinates divided by their largest magnitude
    # (so that 1e300 does not overflow): the centre of the union of bounding boxes, the
    # radius of the farthest vertex.
    magnitude = max(float(np.abs(v).max()) for v, _ in present.values()) or 1.0
    corners = np.concatenate([np.stack([v.min(axis=0), v.max(axis=0)]) / magnitude
                              for v, _ in present.values()])
    centre = (corners.min(axis=0) + corners.max(axis=0)) / 2
    radius = max(float(np.linalg.norm(v / magnitude - centre, axis=1).max())
                 for v, _ in present.values()) or 1.0
    entries = []
    for vertices, faces in present.values():
        local = (vertices / magnitude - centre) / radius  # in [-1, 1]
        vertices, faces = simplified(local, faces, 2 / grid)
        quantized = np.round((np.clip(vertices, -1, 1) + 1) / 2 * _LEVELS).astype(np.uint16)
        wide = len(vertices) > 65535
        entries.append({"positions": _b64(quantized),
                        "indices": _b64(faces.astype(np.uint32 if wide else np.uint16)),
                        "wide": wide, "triangles": int(len(faces))})
    return {"labels": list(present), "meshes": entries}


def decode_mesh(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (n, 3) in the group's frame, faces (m, 3)) of one payload entry: what the
    viewer draws (for tests and inspection)."""
    positions = np.frombuffer(base64.b64decode(entry["positions"]), dtype="<u2")
    indices = np.frombuffer(base64.b64decode(entry["indices"]),
                            dtype="<u4" if entry["wide"] else "<u2")
    return (positions.reshape(-1, 3) / _LEVELS * 2 - 1,
            indices.reshape(-1, 3).astype(np.int64))


def write_viewer(folder, groups: dict, *, element_id: str = "viewer",
                 height: int = 320) -> str:
    """Write ``viewer.js`` and ``meshes.js`` into ``folder``; return the viewer's HTML.

    Parameters
    ----------
    folder : path
        The page's folder (the scripts are referenced relative to it).
    groups : dict
        ``{group label: {mesh label: trimesh.Trimesh}}`` in display order; each group is
        shown on its own (a menu picks it), its meshes left to right at one scale; any frame
        works (the group's meshes must share it).  ``None`` meshes are skipped.
    """
    folder = Path(folder)
    payload = {}
    for label, meshes in groups.items():
        group = group_payload(meshes)
        if group["meshes"]:
            payload[label] = group
    with atomic_path(folder / "meshes.js") as temporary:
        Path(temporary).write_text("window.DEEPSDF_MESHES = " + json.dumps(payload) + ";\n",
                                   encoding="utf-8")
    with atomic_path(folder / "viewer.js") as temporary:
        Path(temporary).write_text(VIEWER_JS, encoding="utf-8")
    options = "".join(f'<option value="{i}">{_escape(label)}</option>'
                      for i, label in enumerate(payload))
    return (f'<div class="viewer"><label>shape <select id="{element_id}-choice">{options}'
            f'</select></label> <span class="hint">drag to orbit, wheel to zoom; one scale, '
            f'left to right: <span id="{element_id}-labels"></span></span><br>'
            f'<canvas id="{element_id}" width="900" height="{height}"></canvas></div>'
            '<script src="meshes.js"></script><script src="viewer.js"></script>'
            f'<script>deepsdfViewer("{element_id}");</script>')


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


VIEWER_JS = r"""// deepsdf mesh viewer: WebGL 1, no dependencies. Orbit: drag. Zoom: wheel.
(function () {
  "use strict";
  var errors = [];
  function report() { document.body.setAttribute("data-viewer-errors", errors.join(" | ")); }
  window.addEventListener("error", function (e) { errors.push(String(e.message)); report(); });

  function compile(gl, type, source) {
    var shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error("shader: " + gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  var VERTEX = "attribute vec3 position; attribute vec3 normal; uniform mat4 view;" +
    "uniform mat4 projection; varying vec3 shadeNormal;" +
    "void main() { shadeNormal = mat3(view) * normal;" +
    " gl_Position = projection * view * vec4(position, 1.0); }";
  var FRAGMENT = "precision mediump float; varying vec3 shadeNormal;" +
    "void main() { float light = abs(normalize(shadeNormal).z);" +
    " gl_FragColor = vec4(vec3(0.55, 0.65, 0.8) * (0.35 + 0.65 * light), 1.0); }";

  function decode(text, Type) {
    var raw = atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return new Type(bytes.buffer);
  }

  // Unindexed triangles with flat normals, in the group's frame (16-bit positions over [-1, 1]).
  function buffers(entry) {
    var q = decode(entry.positions, Uint16Array);
    var f = decode(entry.indices, entry.wide ? Uint32Array : Uint16Array), n = f.length;
    var positions = new Float32Array(n * 3), normals = new Float32Array(n * 3);
    for (var i = 0; i < n; i += 3) {
      var p = [0, 1, 2].map(function (j) {
        var a = f[i + j] * 3;
        return [q[a] / 32767.5 - 1, q[a + 1] / 32767.5 - 1, q[a + 2] / 32767.5 - 1];
      });
      var e1 = [p[1][0] - p[0][0], p[1][1] - p[0][1], p[1][2] - p[0][2]];
      var e2 = [p[2][0] - p[0][0], p[2][1] - p[0][1], p[2][2] - p[0][2]];
      var nx = e1[1] * e2[2] - e1[2] * e2[1], ny = e1[2] * e2[0] - e1[0] * e2[2],
          nz = e1[0] * e2[1] - e1[1] * e2[0], len = Math.hypot(nx, ny, nz) || 1;
      for (var j = 0; j < 3; j++) {
        positions.set(p[j], (i + j) * 3);
        normals.set([nx / len, ny / len, nz / len], (i + j) * 3);
      }
    }
    return {positions: positions, normals: normals, count: n};
  }

  function multiply(a, b) {
    var out = new Float32Array(16);
    for (var col = 0; col < 4; col++) {
      for (var row = 0; row < 4; row++) {
        var sum = 0;
        for (var k = 0; k < 4; k++) { sum += a[k * 4 + row] * b[col * 4 + k]; }
        out[col * 4 + row] = sum;
      }
    }
    return out;
  }

  // Each mesh turns about its own centre and sits shifted by `shift` across the view.
  function viewMatrix(azimuth, elevation, distance, shift) {
    var ca = Math.cos(azimuth), sa = Math.sin(azimuth), ce = Math.cos(elevation),
        se = Math.sin(elevation);
    var yaw = new Float32Array([ca, 0, -sa, 0, 0, 1, 0, 0, sa, 0, ca, 0, 0, 0, 0, 1]);
    var pitch = new Float32Array([1, 0, 0, 0, 0, ce, se, 0, 0, -se, ce, 0, 0, 0, 0, 1]);
    var back = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, shift, 0, -distance, 1]);
    return multiply(back, multiply(pitch, yaw));
  }

  function projectionMatrix(aspect) {
    var f = 1 / Math.tan(25 * Math.PI / 180), near = 0.05, far = 50;
    return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1,
                             0, 0, 2 * far * near / (near - far), 0]);
  }

  window.deepsdfViewer = function (id) {
    report();
    try {
      var canvas = document.getElementById(id), choice = document.getElementById(id + "-choice");
      var gl = canvas.getContext("webgl", {preserveDrawingBuffer: true}) ||
               canvas.getContext("experimental-webgl", {preserveDrawingBuffer: true});
      if (!gl) { throw new Error("WebGL is not available in this browser"); }
      var program = gl.createProgram();
      gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
      gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) { throw new Error("link failed"); }
      gl.useProgram(program);
      var groups = window.DEEPSDF_MESHES || {}, names = Object.keys(groups);
      var labels = document.getElementById(id + "-labels");
      var state = {azimuth: 0.6, elevation: 0.45, distance: 3.4, meshes: []};
      var positionBuffer = gl.createBuffer(), normalBuffer = gl.createBuffer();

      function load(index) {
        var group = groups[names[index]];
        state.meshes = group.meshes.map(buffers);
        labels.textContent = group.labels.join(" | ");
      }

      function attribute(name, buffer, data) {
        var location = gl.getAttribLocation(program, name);
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
        gl.enableVertexAttribArray(location);
        gl.vertexAttribPointer(location, 3, gl.FLOAT, false, 0, 0);
      }

      function draw() {
        gl.viewport(0, 0, canvas.width, canvas.height);
        gl.clearColor(1, 1, 1, 1);
        gl.enable(gl.DEPTH_TEST);
        gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
        var aspect = canvas.width / canvas.height, count = state.meshes.length;
        // Room for `count` unit spheres side by side at the view's distance.
        var slot = Math.min(2.3, 2 * 0.4663 * aspect * state.distance / Math.max(count, 1));
        gl.uniformMatrix4fv(gl.getUniformLocation(program, "projection"), false,
                            projectionMatrix(aspect));
        state.meshes.forEach(function (mesh, i) {
          attribute("position", positionBuffer, mesh.positions);
          attribute("normal", normalBuffer, mesh.normals);
          gl.uniformMatrix4fv(gl.getUniformLocation(program, "view"), false,
                              viewMatrix(state.azimuth, state.elevation, state.distance,
                                         (i - (count - 1) / 2) * slot));
          gl.drawArrays(gl.TRIANGLES, 0, mesh.count);
        });
      }

      function countDrawn() {
        var pixels = new Uint8Array(canvas.width * canvas.height * 4), drawn = 0;
        gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
        for (var i = 0; i < pixels.length; i += 4) {
          if (pixels[i] < 250 || pixels[i + 1] < 250 || pixels[i + 2] < 250) { drawn++; }
        }
        canvas.setAttribute("data-drawn", String(drawn));
      }

      var dragging = null;
      canvas.addEventListener("mousedown", function (e) { dragging = [e.clientX, e.clientY]; });
      window.addEventListener("mouseup", function () { dragging = null; });
      window.addEventListener("mousemove", function (e) {
        if (!dragging) { return; }
        state.azimuth += (e.clientX - dragging[0]) * 0.01;
        state.elevation = Math.max(-1.5, Math.min(1.5, state.elevation + (e.clientY - dragging[1]) * 0.01));
        dragging = [e.clientX, e.clientY];
        draw();
      });
      canvas.addEventListener("wheel", function (e) {
        e.preventDefault();
        state.distance = Math.max(1.2, Math.min(12, state.distance * Math.exp(e.deltaY * 0.001)));
        draw();
      }, {passive: false});
      choice.addEventListener("change", function () { load(Number(choice.value)); draw(); });
      if (names.length) { load(0); }
      draw();
      countDrawn();
    } catch (error) {
      errors.push(String(error.message || error));
      report();
    }
  };
}());
"""
