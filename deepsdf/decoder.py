"""The DeepSDF decoder: an MLP from a latent code and a point to a signed distance."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from .config import DecoderConfig

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """``f(z, x) -> sdf``, the reference architecture with every part configurable.

    Layer ``i`` (``layers[i]``) maps the running features to ``dims[i]`` features; hidden
    layers are followed by ReLU and, where configured, dropout.  A layer listed in
    ``latent_in`` takes the previous features joined with the input ``[z, xyz]``, so the layer
    before it outputs ``dims - (latent_size + 3)`` features (reference: layer 3 outputs
    512 - 259 = 253).  With ``xyz_in_all``, every hidden layer also receives ``xyz``.  The
    output layer gives one value, through tanh when ``use_tanh`` (twice with ``tanh_twice``,
    as the original does when its spec says ``use_tanh``).  ``latent_dropout`` drops code
    entries at the input only; ``latent_in`` layers re-join the undropped ``[z, xyz]``, as
    the original.

    With ``fourier_frequencies = F > 0`` (this project's option, after Tancik et al. 2020), a
    point enters as ``[xyz, sin(2^k pi xyz), cos(2^k pi xyz) for k < F]`` (3 + 6F features)
    wherever xyz enters: high frequencies that a small ReLU network fits slowly.

    Input order and names follow the original release, so its weights load directly
    (see :mod:`deepsdf.original`).
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        input_size = config.latent_size + config.point_features
        point_size = config.point_features
        widths = [input_size] + list(config.dims) + [1]
        last = len(widths) - 2  # index of the output layer
        layers, norms = [], []
        features = input_size
        for i in range(last + 1):
            in_size = features + (input_size if i in config.latent_in else 0)
            if i != 0 and config.xyz_in_all and i not in config.latent_in:
                in_size += point_size
            out_size = widths[i + 1]
            if i + 1 in config.latent_in:
                out_size -= input_size
            elif config.xyz_in_all and i != last:
                out_size -= point_size
            linear = nn.Linear(in_size, out_size)
            if config.weight_norm and i in config.norm_layers:
                linear = weight_norm(linear)
            layers.append(linear)
            use_layer_norm = (not config.weight_norm and i in config.norm_layers and i != last)
            norms.append(nn.LayerNorm(out_size) if use_layer_norm else nn.Identity())
            features = out_size
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        if config.fourier_frequencies:  # not a parameter: state dicts keep the original's keys
            self.register_buffer("frequencies", torch.pi * 2.0 ** torch.arange(
                config.fourier_frequencies, dtype=torch.float32), persistent=False)

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """(n, point_features) encoding of points (n, 3): xyz, then sin and cos of each
        coordinate times each frequency (``[sin k0 xyz, sin k1 xyz, ..., cos ...]``)."""
        if not self.config.fourier_frequencies:
            return points
        angles = (points.unsqueeze(2) * self.frequencies.to(points.dtype)).flatten(1)
        return torch.cat([points, torch.sin(angles), torch.cos(angles)], dim=1)

    def forward(self, codes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Signed distances.

        Parameters
        ----------
        codes : (n, latent_size) tensor
            One code per point (``expand`` a single code to share it without copying).
        points : (n, 3) tensor, normalized frame

        Returns
        -------
        (n, 1) tensor, > 0 outside.
        """
        config = self.config
        points = self.encode(points)
        inputs = torch.cat([codes, points], dim=1) if config.latent_size else points
        x = inputs
        if config.latent_dropout and config.latent_size:
            x = torch.cat([F.dropout(codes, p=0.2, training=self.training), points], dim=1)
        last = len(self.layers) - 1
        for i, (linear, norm) in enumerate(zip(self.layers, self.norms)):
            if i in config.latent_in:
                x = torch.cat([x, inputs], dim=1)
            elif i != 0 and config.xyz_in_all:
                x = torch.cat([x, points], dim=1)
            x = linear(x)
            if i < last:
                x = F.relu(norm(x))
                if i in config.dropout and config.dropout_prob > 0:
                    x = F.dropout(x, p=config.dropout_prob, training=self.training)
        if config.use_tanh:
            x = torch.tanh(x)
            if config.tanh_twice:
                x = torch.tanh(x)
        return x
