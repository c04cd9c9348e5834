"""Every Python snippet of docs/api.md runs as written, in order, and gives what it says."""

import re
from pathlib import Path

import numpy as np
import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_api_snippet_runs_and_says_true(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["16", "tour/chairs/chairs_0000"]
    values = namespace["values"]
    assert values.shape == (10, 20) and values.dtype == torch.float32
    decoder, code, points = namespace["decoder"], namespace["code"], namespace["points"]
    with torch.no_grad():  # against the raw call
        raw = decoder(code.expand(200, -1), points.reshape(-1, 3)).reshape(10, 20)
    torch.testing.assert_close(values, raw)
    mesh, original = namespace["mesh"], namespace["original"]
    offset, scale = namespace["offset"], namespace["scale"]
    np.testing.assert_allclose(original.vertices, mesh.vertices / scale - offset, atol=1e-5)
    assert len(namespace["completed"].codes) == 1


def test_sdf_checks_the_code_length_and_the_points():
    import pytest

    import deepsdf
    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    decoder = Decoder(DecoderConfig(latent_size=8, dims=(16, 16), latent_in=(), dropout=(),
                                    norm_layers=()))
    with pytest.raises(ValueError, match="this decoder's codes have 8"):
        deepsdf.sdf(decoder, torch.zeros(7), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        deepsdf.sdf(decoder, torch.zeros(8), torch.zeros(3, 2))
    assert deepsdf.sdf(decoder, np.zeros((1, 8)), np.zeros(3)).shape == ()
    points = torch.zeros(5, 3, requires_grad=True)
    deepsdf.sdf(decoder, torch.zeros(8), points, grad=True).sum().backward()
    assert points.grad is not None
