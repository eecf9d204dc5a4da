"""A plain softmax MLP: the discriminative classifier a user would otherwise pick, for comparisons."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from regentree.errors import InvalidInputError, NotFittedError

__all__ = ["SoftmaxBaseline"]


def _check_images(X, name: str = "X") -> np.ndarray:
    """`X` as float32 of shape (n, n_features) with finite values in [0, 1]."""
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InvalidInputError(f"{name} must have shape (n_samples, n_features), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidInputError(f"{name} must be a float array in [0, 1], got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise InvalidInputError(f"{name} must hold finite values in [0, 1]")
    return arr.astype(np.float32, copy=False)


class SoftmaxBaseline(ClassifierMixin, BaseEstimator):
    """MLP with ReLU hidden layers trained with cross-entropy; max softmax is its confidence.

    Sized like the paper's VAE encoder (two hidden layers of 500 units), so it has comparable capacity.

    Parameters
    ----------
    hidden_dims : tuple of int, default=(500, 500)
        Widths of the hidden layers.
    epochs : int, default=20
        Passes over the training data.
    batch_size : int, default=128
    lr : float, default=1e-3
        Adam learning rate.
    random_state : int, default=0
        Seed of the weight initialisation and of the batch shuffling; the same seed gives the same model.
    device : str, default="cpu"
        Torch device to train and predict on.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in `fit`.
    n_features_in_ : int
    model_ : torch.nn.Sequential
        The trained network, in eval mode.
    """

    def __init__(self, hidden_dims=(500, 500), epochs=20, batch_size=128, lr=1e-3, random_state=0, device="cpu"):
        self.hidden_dims = hidden_dims
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device

    def _build(self, n_features: int, n_classes: int) -> nn.Sequential:
        layers, width = [], n_features
        for hidden in self.hidden_dims:
            layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
            width = int(hidden)
        layers.append(nn.Linear(width, n_classes))
        return nn.Sequential(*layers)

    def fit(self, X, y) -> SoftmaxBaseline:
        """Train on images `X` of shape (n_samples, n_features) in [0, 1] and labels `y` of shape (n_samples,)."""
        X = _check_images(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise InvalidInputError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise InvalidInputError(f"y must hold at least 2 classes, got {classes.size}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise InvalidInputError("epochs and batch_size must be >= 1")
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
            torch.manual_seed(self.random_state)
            model = self._build(X.shape[1], classes.size).to(self.device)
        generator = torch.Generator().manual_seed(self.random_state)
        inputs = torch.from_numpy(X).to(self.device)
        targets = torch.from_numpy(y_idx.astype(np.int64)).to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(int(self.epochs)):
            permutation = torch.randperm(X.shape[0], generator=generator).to(self.device)
            for batch in permutation.split(int(self.batch_size)):
                optimizer.zero_grad()
                loss_fn(model(inputs[batch]), targets[batch]).backward()
                optimizer.step()
        self.classes_, self.n_features_in_, self.model_ = classes, X.shape[1], model.eval()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("SoftmaxBaseline is not fitted; call fit first")

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ndarray of shape (n_samples, n_classes), columns ordered as `classes_`."""
        self._check_fitted()
        X = _check_images(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidInputError(f"X has {X.shape[1]} features, the model expects {self.n_features_in_}")
        inputs = torch.from_numpy(X).to(self.device)
        with torch.no_grad():
            probs = [torch.softmax(self.model_(b), dim=1).cpu() for b in inputs.split(max(int(self.batch_size), 1024))]
        return torch.cat(probs).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """Predicted labels, ndarray of shape (n_samples,) drawn from `classes_`."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def max_softmax(self, X) -> np.ndarray:
        """Confidence for rejection: the largest class probability, ndarray of shape (n_samples,) in (0, 1]."""
        return self.predict_proba(X).max(axis=1)
