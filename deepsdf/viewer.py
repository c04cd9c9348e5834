"""An interactive 3D view of meshes that works offline from a folder alone (no CDN, no server).

:func:`write_viewer` writes ``viewer.js`` (a small WebGL viewer of this project: orbit by
dragging, zoom with the wheel, flat Lambert shading) and ``meshes.js`` (the meshes, as a
script that assigns ``window.DEEPSDF_MESHES``: a ``<script src>`` loads from ``file://``,
where ``fetch`` of a local file is refused), and returns the HTML to put in a page.

The viewer reports on the page itself, for tests and for curious users: after its first frame
the canvas carries ``data-drawn`` (how many of its pixels differ from the background) and the
page body ``data-viewer-errors`` (messages of any script error, empty when none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepsdf_preprocess.contract import atomic_path

__all__ = ["write_viewer", "VIEWER_JS"]

#: Triangles kept per mesh (larger meshes are decimated by face subsampling for the view).
MAX_FACES = 60_000


def _mesh_payload(mesh) -> dict:
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(faces) > MAX_FACES:
        faces = faces[np.linspace(0, len(faces) - 1, MAX_FACES).astype(np.int64)]
    return {"vertices": np.round(vertices, 5).reshape(-1).tolist(),
            "faces": faces.reshape(-1).tolist()}


def write_viewer(folder, meshes: dict, *, element_id: str = "viewer", height: int = 420) -> str:
    """Write ``viewer.js`` and ``meshes.js`` into ``folder``; return the viewer's HTML.

    Parameters
    ----------
    folder : path
        The page's folder (the scripts are referenced relative to it).
    meshes : dict
        ``{label: trimesh.Trimesh}`` in display order (``None`` values are skipped); each is
        centred and scaled to the unit sphere by the viewer, so any frame works.
    """
    folder = Path(folder)
    payload = {label: _mesh_payload(mesh) for label, mesh in meshes.items()
               if mesh is not None and len(mesh.faces)}
    with atomic_path(folder / "meshes.js") as temporary:
        Path(temporary).write_text("window.DEEPSDF_MESHES = " + json.dumps(payload) + ";\n",
                                   encoding="utf-8")
    with atomic_path(folder / "viewer.js") as temporary:
        Path(temporary).write_text(VIEWER_JS, encoding="utf-8")
    options = "".join(f'<option value="{i}">{_escape(label)}</option>'
                      for i, label in enumerate(payload))
    return (f'<div class="viewer"><label>mesh <select id="{element_id}-choice">{options}'
            f'</select></label> <span class="hint">drag to orbit, wheel to zoom</span><br>'
            f'<canvas id="{element_id}" width="640" height="{height}"></canvas></div>'
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

  // Unindexed triangles with flat normals, centred and scaled to the unit sphere.
  function buffers(mesh) {
    var v = mesh.vertices, f = mesh.faces, n = f.length, i, k;
    var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (i = 0; i < v.length; i += 3) {
      for (k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], v[i + k]); hi[k] = Math.max(hi[k], v[i + k]); }
    }
    var c = [0, 1, 2].map(function (k) { return (lo[k] + hi[k]) / 2; });
    var r = 0;
    for (i = 0; i < v.length; i += 3) {
      r = Math.max(r, Math.hypot(v[i] - c[0], v[i + 1] - c[1], v[i + 2] - c[2]));
    }
    r = r || 1;
    var positions = new Float32Array(n * 3), normals = new Float32Array(n * 3);
    for (i = 0; i < n; i += 3) {
      var p = [0, 1, 2].map(function (j) {
        var a = f[i + j] * 3;
        return [(v[a] - c[0]) / r, (v[a + 1] - c[1]) / r, (v[a + 2] - c[2]) / r];
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

  function viewMatrix(azimuth, elevation, distance) {
    var ca = Math.cos(azimuth), sa = Math.sin(azimuth), ce = Math.cos(elevation),
        se = Math.sin(elevation);
    var yaw = new Float32Array([ca, 0, -sa, 0, 0, 1, 0, 0, sa, 0, ca, 0, 0, 0, 0, 1]);
    var pitch = new Float32Array([1, 0, 0, 0, 0, ce, se, 0, 0, -se, ce, 0, 0, 0, 0, 1]);
    var back = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -distance, 1]);
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
      var names = Object.keys(window.DEEPSDF_MESHES || {});
      var state = {azimuth: 0.6, elevation: 0.45, distance: 3.2, mesh: null};
      var positionBuffer = gl.createBuffer(), normalBuffer = gl.createBuffer();

      function load(index) {
        state.mesh = buffers(window.DEEPSDF_MESHES[names[index]]);
        gl.bindBuffer(gl.ARRAY_BUFFER, positionBuffer);
        gl.bufferData(gl.ARRAY_BUFFER, state.mesh.positions, gl.STATIC_DRAW);
        gl.bindBuffer(gl.ARRAY_BUFFER, normalBuffer);
        gl.bufferData(gl.ARRAY_BUFFER, state.mesh.normals, gl.STATIC_DRAW);
      }

      function attribute(name, buffer) {
        var location = gl.getAttribLocation(program, name);
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.enableVertexAttribArray(location);
        gl.vertexAttribPointer(location, 3, gl.FLOAT, false, 0, 0);
      }

      function draw() {
        gl.viewport(0, 0, canvas.width, canvas.height);
        gl.clearColor(1, 1, 1, 1);
        gl.enable(gl.DEPTH_TEST);
        gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
        if (!state.mesh) { return; }
        attribute("position", positionBuffer);
        attribute("normal", normalBuffer);
        gl.uniformMatrix4fv(gl.getUniformLocation(program, "view"), false,
                            viewMatrix(state.azimuth, state.elevation, state.distance));
        gl.uniformMatrix4fv(gl.getUniformLocation(program, "projection"), false,
                            projectionMatrix(canvas.width / canvas.height));
        gl.drawArrays(gl.TRIANGLES, 0, state.mesh.count);
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
