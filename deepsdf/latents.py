"""The latent-code table: one code per training shape, with its instance map."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.validate import unique_entries

__all__ = ["LatentTable", "split_hash", "split_instances", "find_instance", "UnknownInstance"]


class UnknownInstance(InputError):
    """A name that no training instance has (a bad argument: one line in the CLI); ``hint``
    names the closest ones."""

    def __init__(self, message: str, hint: str):
        super().__init__(message + hint)
        self.hint = hint


def split_instances(split: dict) -> list[str]:
    """Instance keys ``dataset/class/instance`` of a split, in the split file's order.

    This order gives the rows of the code table (as in the original release, which iterates
    the split file's datasets, classes and instances as listed).
    """
    return unique_entries([f"{dataset}/{class_name}/{instance}"
                           for dataset, classes in split.items()
                           for class_name, instances in classes.items()
                           for instance in instances], source="the split", what="instance(s)")


def find_instance(instance_ids, name: str) -> int:
    """The row of a training instance named ``dataset/class/instance``, or by an unambiguous
    suffix (``class/instance``, ``instance``): one rule for every command.

    Raises
    ------
    ValueError
        For an ambiguous name (listing the candidates) or an unknown one (listing the closest
        names).
    """
    import difflib

    ids = list(instance_ids)
    if name in ids:
        return ids.index(name)
    matches = [i for i, key in enumerate(ids) if key.endswith("/" + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(ids[i] for i in matches[:5])
        raise InputError(f"{name!r} matches {len(matches)} training instances ({listed}"
                         f"{', ...' if len(matches) > 5 else ''}); give dataset/class/instance")
    close = difflib.get_close_matches(name, ids + [key.split("/", 1)[-1] for key in ids]
                                      + [key.rsplit("/", 1)[-1] for key in ids], n=3,
                                      cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in dict.fromkeys(close))}?" if close \
        else f" (it has {len(ids)}, e.g. {ids[0]!r})" if ids else ""
    raise UnknownInstance(f"{name!r} is not a training instance of this model", hint)


def split_hash(split: dict) -> str:
    """A stable SHA-256 (hex, 16 characters) of a split's instance list, order included."""
    payload = json.dumps(split_instances(split), separators=(",", ":")).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


class LatentTable(nn.Module):
    """Codes ``weight`` (n, d), row ``i`` for ``instance_ids[i]``.

    Parameters
    ----------
    instance_ids : list of str
        ``dataset/class/instance`` keys, one per row.
    latent_size : int
    init_std : float, keyword-only
        Per-component standard deviation of the initial codes (reference ``1 / 16``:
        ``CodeInitStdDev / sqrt(latent_size)``).
    generator : torch.Generator, optional, keyword-only
    split_digest : str, keyword-only
        :func:`split_hash` of the split the rows come from.
    """

    def __init__(self, instance_ids, latent_size: int, *, init_std: float,
                 generator: torch.Generator | None = None, split_digest: str = ""):
        super().__init__()
        self.instance_ids = list(instance_ids)
        if len(set(self.instance_ids)) != len(self.instance_ids):
            raise InputError("instance ids of a latent table must be unique")
        self.split_digest = split_digest
        weight = torch.empty(len(self.instance_ids), latent_size)
        weight.normal_(0.0, init_std, generator=generator)
        self.weight = nn.Parameter(weight)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """(m, d) codes of the given (m,) row indices."""
        return self.weight[rows]

    @torch.no_grad()
    def project_(self, bound: float | None) -> None:
        """Scale every row whose norm exceeds ``bound`` back onto the sphere of that radius.

        Applied to the whole table after each optimizer step, so every process holds the
        same table (``Embedding(max_norm)`` rescales only the rows it looks up).
        """
        if bound is None:
            return
        norms = self.weight.norm(dim=1, keepdim=True)
        self.weight.mul_(torch.where(norms > bound, bound / norms, torch.ones_like(norms)))

    @torch.no_grad()
    def renorm_rows_(self, rows: torch.Tensor, bound: float | None) -> None:
        """Rescale the given rows whose norm exceeds ``bound`` onto that sphere, in place.

        What the original's ``Embedding(max_norm=bound)`` does to the rows a batch looks up,
        before they are used (legacy specs train this way).
        """
        if bound is None:
            return
        rows = torch.unique(rows)
        norms = self.weight[rows].norm(dim=1, keepdim=True)
        self.weight[rows] = self.weight[rows] * torch.where(
            norms > bound, bound / (norms + 1e-7), torch.ones_like(norms))

    def row_of(self, instance_id: str) -> int:
        """Row index of ``dataset/class/instance`` (ValueError if absent)."""
        return self.instance_ids.index(instance_id)
