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
analysis (CCA) between the rows' image features and their targets (``cca_text_basis``). Most directions of a
sentence embedding say nothing an image shows; the basis keeps the ones the image features predict best, so the
cosine of a caption with a prompt compares what can be seen. The basis is fitted once on all rows fitted; only the
map is cross-validated (a held-out prediction lives in the same space as every prompt's coordinates).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
BASIS_PCS = 256  # image features are reduced to this many principal components for the CCA of the text basis


class RidgeCaption(nn.Module):
    """``(B, in_dim) -> (B, out_dim)``; all state is in buffers (saved with the model, never trained by gradient).

    The widths come from the data: the buffers are empty until ``fit`` (or ``load_state_dict``) sizes them.

    Args:
        text_basis: ``k > 0``: predict coordinates in a ``k``-dimensional CCA basis of the text space (module
            docstring; compare captions with ``embed_target`` of the text); 0: predict the text embedding itself.
        basis_penalty: Ridge of the CCA's covariances, in units of their mean variance. The default (3) and the
            correlation weighting of the basis were the best of those probed on AGIQA-3K (issue 9 notes).
    """

    _SIZED = ("mean", "scale", "weight", "bias")
    _BASIS = ("text_mean", "text_scale", "basis")  # registered only with a text basis: older files still load

    def __init__(self, text_basis: int = 0, basis_penalty: float = 3.0) -> None:
        super().__init__()
        if text_basis < 0 or basis_penalty <= 0:
            raise ValueError(f"RidgeCaption: text_basis={text_basis} must be >= 0, basis_penalty={basis_penalty} > 0")
        self.text_basis, self.basis_penalty = text_basis, basis_penalty
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.register_buffer("weight", torch.zeros(0, 0))
        self.register_buffer("bias", torch.zeros(0))
        self.register_buffer("penalty", torch.zeros(()))
        if text_basis:
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
        """Predicted text embeddings of image features ``x`` (their basis coordinates with ``text_basis``)."""
        x = (x.float() - self.mean) / self.scale
        return x @ self.weight + self.bias

    def embed_target(self, y: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``y`` in the space of the captions: as they are, or their basis coordinates."""
        if not self.text_basis:
            return y.float()
        if self.basis.numel() == 0:
            raise RuntimeError("RidgeCaption: the text basis is fitted with the map; call fit (or load its state)")
        return ((y.float() - self.text_mean) / self.text_scale) @ self.basis

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

        Args:
            x: Image features of the rows.
            y: Text embedding of each row's prompt.
            groups: Group (prompt) id of each row; folds hold whole groups.
            n_folds: Folds of the cross-validation (fewer when there are fewer groups).
            alphas: Penalties tried, in units of ``in_dim``.
            seed: Seed of the fold assignment.

        Returns:
            ``(n, out_dim)`` out-of-fold predictions for the rows, under the penalty chosen.
        """
        x, y = x.double().cpu(), y.double().cpu()
        groups = np.asarray(groups)
        names, group_of = np.unique(groups, return_inverse=True)
        if len(x) != len(y) or len(x) != len(groups):
            raise ValueError(f"RidgeCaption.fit: {len(x)} feature rows, {len(y)} targets, {len(groups)} groups")
        if len(names) < 2:
            raise ValueError(f"RidgeCaption.fit: the rows hold {len(names)} prompt(s); the fit needs at least 2")
        if self.text_basis:
            text_mean, text_scale, basis = cca_text_basis(x, y, self.text_basis, self.basis_penalty)
            for name, value in zip(self._BASIS, (text_mean, text_scale, basis), strict=True):
                setattr(self, name, value.to(self.penalty))
            y = ((y - text_mean) / text_scale) @ basis
        order = np.random.default_rng(seed).permutation(len(names))
        fold = (np.argsort(order) % min(n_folds, len(names)))[group_of]
        targets = torch.stack([y[group_of == g][0] for g in range(len(names))])  # one per group
        lambdas = [a * x.shape[1] for a in alphas]
        oof = torch.zeros(len(alphas), *y.shape, dtype=torch.float64)
        for k in np.unique(fold):
            inside, held = torch.as_tensor(fold != k), torch.as_tensor(fold == k)
            solve = _DualRidge(x[inside], y[inside])
            for i, lam in enumerate(lambdas):
                oof[i, held] = solve.predict(x[held], lam)
        quality = [_rank_share(p, targets, torch.as_tensor(group_of)) for p in oof]
        best = int(np.argmax(quality))
        solve = _DualRidge(x, y)
        weight, bias = solve.weights(lambdas[best])
        for name, value in zip(self._SIZED, (solve.mean, solve.scale, weight, bias), strict=True):
            setattr(self, name, value.to(self.penalty))
        self.penalty.fill_(lambdas[best])
        return oof[best].float()


def cca_text_basis(
    x: torch.Tensor, y: torch.Tensor, k: int, penalty: float, pcs: int = BASIS_PCS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The text side of a regularised CCA between image features ``x`` and text embeddings ``y`` (rows paired).

    Both sides are standardised; ``x`` is reduced to its first ``pcs`` principal components; each covariance gets
    ``penalty`` times its mean variance on the diagonal. Returns the text standardisation (mean, scale) and the
    ``(y_dim, k)`` basis: the text directions of the ``k`` largest canonical correlations, each scaled by its
    correlation (a direction the image predicts better weighs more in a cosine).
    """
    x, y = x.double(), y.double()
    if k > min(y.shape[1], len(x) - 1):
        raise ValueError(f"RidgeCaption: text_basis={k} exceeds the {y.shape[1]} text dimensions or {len(x)} rows")
    xs = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    text_mean, text_scale = y.mean(0), y.std(0).clamp_min(1e-6)
    ys = (y - text_mean) / text_scale
    _, sing, vt = torch.linalg.svd(xs, full_matrices=False)
    keep = min(pcs, len(sing))
    xp = xs @ vt[:keep].T  # uncorrelated columns of variance sing^2 / n
    n = len(x)
    var_x = sing[:keep] ** 2 / n
    white_x = (var_x + penalty * var_x.mean()).rsqrt()
    cov_y = ys.T @ ys / n
    eigval, eigvec = torch.linalg.eigh(cov_y + penalty * cov_y.diagonal().mean() * torch.eye(len(cov_y), dtype=y.dtype))
    white_y = eigvec @ torch.diag(eigval.rsqrt()) @ eigvec.T
    _, corr, right = torch.linalg.svd(white_x.unsqueeze(1) * (xp.T @ ys / n) @ white_y, full_matrices=False)
    return text_mean, text_scale, white_y @ right[:k].T * corr[:k]


class _DualRidge:
    """Eigen-decomposition of one fit's kernel, so that every penalty is a cheap solve."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.mean, self.scale = x.mean(0), x.std(0).clamp_min(1e-6)
        self.x = (x - self.mean) / self.scale
        self.y_mean = y.mean(0)
        self.eigval, self.eigvec = torch.linalg.eigh(self.x @ self.x.T)
        self.proj = self.eigvec.T @ (y - self.y_mean)

    def dual(self, lam: float) -> torch.Tensor:
        return self.eigvec @ (self.proj / (self.eigval.clamp_min(0) + lam).unsqueeze(1))

    def weights(self, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x.T @ self.dual(lam), self.y_mean

    def predict(self, x: torch.Tensor, lam: float) -> torch.Tensor:
        return ((x - self.mean) / self.scale) @ self.weights(lam)[0] + self.y_mean


def _rank_share(pred: torch.Tensor, targets: torch.Tensor, group_of: torch.Tensor) -> float:
    """Mean share of the other groups' targets that a row's prediction is less similar to than to its own."""
    sim = F.normalize(pred, dim=-1) @ F.normalize(targets, dim=-1).T  # (n, groups)
    own = sim.gather(1, group_of.unsqueeze(1))
    return float(((sim < own).sum(1).double() / (targets.shape[0] - 1)).mean())
