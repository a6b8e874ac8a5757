"""A linear map from image features to the text space, fitted in closed form (ridge): ``RidgeCaption``.

The map predicts, from an image's features, the text embedding of the prompt it was made from: a "caption" in
the text tower's own space. The text side stays fixed, so a prompt never seen in training is compared in the
same space as the training prompts; a map trained by gradient together with a text projection can instead learn
the training prompts by heart (alignment then reads them, but not new ones).

Ridge on standardised inputs, solved in the dual (``n`` rows, ``d`` features, ``n < d``):
``W = X^T (X X^T + lambda I)^{-1} (Y - mean Y)``. ``lambda`` is picked from ``alphas * d`` by grouped
cross-validation on the rows fitted: the one whose out-of-fold predictions rank each row's own target above the
other groups' targets most often. ``fit`` returns those out-of-fold predictions, so a head trained after it sees
on its training rows a caption as good as on new prompts, not one fitted to them.

With ``text_basis = k > 0`` the map predicts, instead of the text embedding itself, its coordinates in a
``k``-dimensional basis of the text space: the text-side directions of a regularised canonical correlation
analysis (CCA) between the rows' image features and their targets (``cca_text_bases``). Most directions of a
sentence embedding say nothing an image shows; the basis keeps the ones the image features predict best, so the
cosine of a caption with a prompt (``match``) compares what can be seen. ``k`` and the CCA's ridge can be lists of
candidates, chosen with ``lambda`` by the same cross-validation.

The basis is fitted to the rows too, so an out-of-fold caption compared in the basis of all rows would meet its
own prompt in directions chosen with that prompt, and look better than a new prompt's caption does. Each fold is
therefore compared in a basis fitted without it. To be comparable with any prompt in the basis kept, a caption is
handed on as a text-space reading vector ``r = c B^T`` (unit coordinates ``c``): ``r . (y - m) / s`` is ``c``'s dot
product with the coordinates of text ``y``, and ``embed_target`` scales ``(y - m) / s`` to unit coordinates, so the
product is their cosine. An out-of-fold reading uses its fold's basis; read against the kept standardisation it
gives the fold's cosine up to the shift of the text means and the norm of the prompt's coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
BASIS_PCS = 256  # image features are reduced to this many principal components for the CCA of the text basis
Space = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (text mean, text scale, basis) of cca_text_bases


class RidgeCaption(nn.Module):
    """``(B, in_dim) -> (B, out_dim)``; all state is in buffers (saved with the model, never trained by gradient).

    The widths come from the data: the buffers are empty until ``fit`` (or ``load_state_dict``) sizes them.

    Args:
        text_basis: ``k > 0``: predict coordinates in a ``k``-dimensional CCA basis of the text space (module
            docstring; compare captions with texts by ``match``); 0: predict the text embedding itself. A list:
            the candidate sizes, one chosen by ``fit``'s grouped cross-validation (a size wider than the rows
            can give, fewer rows than dimensions, is cut to what they give).
        basis_penalty: Ridge of the CCA's covariances, in units of their mean variance; a list: candidates, as for
            ``text_basis``.
    """

    _SIZED = ("mean", "scale", "weight", "bias")
    _BASIS = ("text_mean", "text_scale", "basis")  # registered only with a text basis: older files still load

    def __init__(self, text_basis: int | Sequence[int] = 0, basis_penalty: float | Sequence[float] = 3.0) -> None:
        super().__init__()
        sizes = tuple(text_basis) if isinstance(text_basis, Sequence) else (text_basis,)
        penalties = tuple(basis_penalty) if isinstance(basis_penalty, Sequence) else (basis_penalty,)
        if not sizes or not penalties or min(sizes) < 0 or min(penalties) <= 0 or (0 in sizes and len(sizes) > 1):
            raise ValueError(
                f"RidgeCaption: text_basis={text_basis} must be 0 or sizes > 0, basis_penalty={basis_penalty} > 0"
            )
        self.text_basis, self.sizes, self.penalties = max(sizes), sizes, penalties
        self.chosen: dict[str, float] = {}  # what the last fit's cross-validation picked
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.register_buffer("weight", torch.zeros(0, 0))
        self.register_buffer("bias", torch.zeros(0))
        self.register_buffer("penalty", torch.zeros(()))
        if self.text_basis:
            self.register_buffer("text_mean", torch.zeros(0))
            self.register_buffer("text_scale", torch.ones(0))
            self.register_buffer("basis", torch.zeros(0, 0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        for name in self._SIZED + (self._BASIS if self.text_basis else ()):
            if prefix + name in state_dict:
                setattr(self, name, self.penalty.new_empty(state_dict[prefix + name].shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has run (or fitted state was loaded)."""
        return bool(self.penalty > 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Captions of image features ``x``: predicted text embeddings; with ``text_basis``, the predicted basis
        coordinates as a text-space reading vector (``_reading``). Compare them with a text by ``match``."""
        pred = (x.float() - self.mean) / self.scale @ self.weight + self.bias
        return _reading(pred, self._space()) if self.text_basis else pred

    def embed_target(self, y: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``y`` as ``match`` meets them: as they are, or standardised and scaled so that their
        basis coordinates have unit norm."""
        if not self.text_basis:
            return y.float()
        space = self._space()
        norm = _coordinates(y.float(), space).norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return _standardised(y.float(), space) / norm

    def match(self, captions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The cosine of each caption with its ``embed_target`` row (taken in the basis with ``text_basis``)."""
        return (captions * targets).sum(-1) if self.text_basis else F.cosine_similarity(captions, targets, dim=-1)

    def _space(self) -> Space:
        if self.basis.numel() == 0:
            raise RuntimeError("RidgeCaption: the text basis is fitted with the map; call fit (or load its state)")
        return self.text_mean, self.text_scale, self.basis

    def _spaces(self, ridge: _DualRidge, y: torch.Tensor) -> dict[tuple[int, float], Space | None]:
        """Every candidate basis fitted on the rows of ``ridge`` with targets ``y``, by (size, penalty);
        ``{(0, 0): None}`` without a basis."""
        if not self.text_basis:
            return {(0, 0.0): None}
        components = ridge.components(BASIS_PCS)
        prompts = len(torch.unique(y, dim=0))  # rows of one prompt share their target
        cap = min(y.shape[1], prompts - 1, components[0].shape[1])  # canonical directions the rows can give
        if len(self.sizes) == 1 and self.sizes[0] > cap:
            raise ValueError(
                f"RidgeCaption: text_basis={self.sizes[0]} exceeds the {y.shape[1]} text dimensions or the {prompts} "
                f"distinct prompts less one (at most {cap} here); give a smaller size, or a list of candidates "
                "(those too wide are cut to fit)"
            )
        spaces = {}
        bases = cca_text_bases(components, y, min(max(self.sizes), cap), self.penalties)
        for penalty, (mean, scale, basis) in zip(self.penalties, bases, strict=True):
            spaces |= {(k, penalty): (mean, scale, basis[:, : min(k, cap)]) for k in self.sizes}  # by correlation
        return spaces

    @torch.no_grad()
    def fit(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        groups: np.ndarray,
        n_folds: int = 5,
        alphas: tuple[float, ...] = DEFAULT_ALPHAS,
        seed: int = 0,
    ) -> torch.Tensor:
        """Fit on rows ``x`` (``(n, in_dim)``) with targets ``y`` (``(n, out_dim)``, equal within a group).

        The ridge penalty (and the basis size and penalty among the candidates) is the one whose out-of-fold
        captions rank their own group's target above the other groups' most often, each fold compared in the basis
        fitted without it.

        Args:
            x: Image features of the rows.
            y: Text embedding of each row's prompt.
            groups: Group (prompt) id of each row; folds hold whole groups.
            n_folds: Folds of the cross-validation (fewer when there are fewer groups).
            alphas: Penalties tried, in units of ``in_dim``.
            seed: Seed of the fold assignment.

        Returns:
            ``(n, out_dim)`` out-of-fold captions of the rows (``forward``'s form), under the choice made.
        """
        x, y = x.double().cpu(), y.double().cpu()
        groups = np.asarray(groups)
        names, group_of = np.unique(groups, return_inverse=True)
        if len(x) != len(y) or len(x) != len(groups):
            raise ValueError(f"RidgeCaption.fit: {len(x)} feature rows, {len(y)} targets, {len(groups)} groups")
        if len(names) < (3 if self.text_basis else 2):
            raise ValueError(
                f"RidgeCaption.fit: the rows hold {len(names)} prompt(s); the fit needs at least 2, and 3 with a text "
                "basis (each fold's basis is fitted on the other folds' prompts): train on more prompts, or without "
                "the basis (caption_basis: 0)"
            )
        order = np.random.default_rng(seed).permutation(len(names))
        fold = (np.argsort(order) % min(n_folds, len(names)))[group_of]
        first_row = torch.as_tensor([np.flatnonzero(group_of == g)[0] for g in range(len(names))])
        lambdas = [a * x.shape[1] for a in alphas]
        hits: dict[tuple, float] = {}
        held_out: list[tuple[torch.Tensor, dict]] = []  # per fold: its rows, its (space, predictions) per candidate
        for k in np.unique(fold):
            inside, held = torch.as_tensor(fold != k), torch.as_tensor(fold == k)
            ridge = _DualRidge(x[inside])
            fold_fits = {}
            for candidate, space in self._spaces(ridge, y[inside]).items():  # held prompts shape no basis
                fold_y = _coordinates(y, space)
                preds = ridge.predict(x[held], fold_y[inside], lambdas)
                for i, pred in enumerate(preds):
                    share = _rank_share(pred, fold_y[first_row], torch.as_tensor(group_of[fold == k]))
                    hits[candidate + (i,)] = hits.get(candidate + (i,), 0.0) + share * int(held.sum())
                fold_fits[candidate] = (space, preds)
            held_out.append((held, fold_fits))
        *candidate, best = max(hits, key=hits.get)  # the first of equals, in the order tried
        ridge = _DualRidge(x)
        space = self._spaces(ridge, y)[tuple(candidate)]
        if self.text_basis:
            for name, value in zip(self._BASIS, space, strict=True):
                setattr(self, name, value.to(self.penalty))
        ((weight, bias),) = ridge.weights(_coordinates(y, space), [lambdas[best]])
        for name, value in zip(self._SIZED, (ridge.mean, ridge.scale, weight, bias), strict=True):
            setattr(self, name, value.to(self.penalty))
        self.penalty.fill_(lambdas[best])
        width = space[2].shape[1] if space is not None else 0
        self.chosen = {"text_basis": width, "basis_penalty": candidate[1], "alpha": alphas[best]}
        oof = torch.zeros_like(y)
        for held, fold_fits in held_out:
            fold_space, preds = fold_fits[tuple(candidate)]
            oof[held] = _reading(preds[best], fold_space, space)
        return oof.float()


def _standardised(y: torch.Tensor, space: Space) -> torch.Tensor:
    return (y - space[0]) / space[1]


def _coordinates(y: torch.Tensor, space: Space | None) -> torch.Tensor:
    """Text embeddings ``y`` in the basis of ``space`` (None: as they are)."""
    return y if space is None else _standardised(y, space) @ space[2]


def _reading(coords: torch.Tensor, space: Space | None, read_in: Space | None = None) -> torch.Tensor:
    """Unit basis coordinates ``c`` of ``space`` as the text-space vector ``r = c B^T``, for which ``r . (y - m) / s``
    is ``c``'s dot product with the text's coordinates ``((y - m) / s) B``. ``read_in``: the vector for texts
    standardised by another space's ``m'``, ``s'`` (elementwise ``r s' / s``; equal up to the shift of the means)."""
    if space is None:
        return coords
    reading = F.normalize(coords, dim=-1) @ space[2].T
    return reading if read_in is None else reading * read_in[1] / space[1]


def cca_text_bases(
    components: tuple[torch.Tensor, torch.Tensor], y: torch.Tensor, k: int, penalties: Sequence[float]
) -> list[Space]:
    """The text side of a regularised CCA between image features and text embeddings ``y`` (rows paired), under
    each of ``penalties``.

    The image side comes as its standardised rows' principal components (``_DualRidge.components``); ``y`` is
    standardised; each covariance gets ``penalty`` times its mean variance on the diagonal. Returns, per penalty,
    the text standardisation (mean, scale) and the ``(y_dim, k)`` basis: the text directions of the ``k`` largest
    canonical correlations, each scaled by its correlation (a direction the image predicts better weighs more in a
    cosine). ``k`` is at most what the rows give (``RidgeCaption._spaces`` cuts it).
    """
    xp, var_x = components
    y = y.double()
    text_mean, text_scale = y.mean(0), y.std(0).clamp_min(1e-6)
    ys = (y - text_mean) / text_scale
    n = len(y)
    cross = xp.T @ ys / n
    cov_y = ys.T @ ys / n
    spaces = []
    for penalty in penalties:
        white_x = (var_x + penalty * var_x.mean()).rsqrt()
        ridge_y = penalty * cov_y.diagonal().mean() * torch.eye(len(cov_y), dtype=y.dtype)
        eigval, eigvec = torch.linalg.eigh(cov_y + ridge_y)
        white_y = eigvec @ torch.diag(eigval.rsqrt()) @ eigvec.T
        _, corr, right = torch.linalg.svd(white_x.unsqueeze(1) * cross @ white_y, full_matrices=False)
        spaces.append((text_mean, text_scale, white_y @ right[:k].T * corr[:k]))
    return spaces


class _DualRidge:
    """Eigen-decomposition of one fit's kernel ``X X^T`` (``X`` the standardised rows), so that every target and
    penalty is a cheap solve; its leading eigenvectors are also ``X``'s principal components."""

    def __init__(self, x: torch.Tensor) -> None:
        self.mean, self.scale = x.mean(0), x.std(0).clamp_min(1e-6)
        self.x = (x - self.mean) / self.scale
        self.eigval, self.eigvec = torch.linalg.eigh(self.x @ self.x.T)  # ascending

    def components(self, pcs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows' first ``pcs`` principal component scores ``(n, pcs)`` (uncorrelated columns) and variances."""
        keep = min(pcs, *self.x.shape)
        val = self.eigval[-keep:].flip(0).clamp_min(0)
        return self.eigvec[:, -keep:].flip(1) * val.sqrt(), val / len(self.x)

    def _shrunk(self, y: torch.Tensor, lams: Sequence[float]) -> tuple[list[torch.Tensor], torch.Tensor]:
        y_mean = y.mean(0)
        proj = self.eigvec.T @ (y - y_mean)
        return [self.eigvec @ (proj / (self.eigval.clamp_min(0) + lam).unsqueeze(1)) for lam in lams], y_mean

    def weights(self, y: torch.Tensor, lams: Sequence[float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weights and bias of the ridge fit of targets ``y`` (one row per fitted row) under each penalty."""
        duals, y_mean = self._shrunk(y, lams)
        return [(self.x.T @ dual, y_mean) for dual in duals]

    def predict(self, x: torch.Tensor, y: torch.Tensor, lams: Sequence[float]) -> list[torch.Tensor]:
        """Predictions for rows ``x`` of the fit of ``y`` under each penalty (through the kernel, not the weights)."""
        kernel = ((x - self.mean) / self.scale) @ self.x.T
        duals, y_mean = self._shrunk(y, lams)
        return [kernel @ dual + y_mean for dual in duals]


def _rank_share(pred: torch.Tensor, targets: torch.Tensor, group_of: torch.Tensor) -> float:
    """Mean share of the other groups' targets that a row's prediction is less similar to than to its own."""
    sim = F.normalize(pred, dim=-1) @ F.normalize(targets, dim=-1).T  # (n, groups)
    own = sim.gather(1, group_of.unsqueeze(1))
    return float(((sim < own).sum(1).double() / (targets.shape[0] - 1)).mean())
