"""Exception types: every user-facing failure is one of these, with a one-line message naming what and where."""


class RegentreeError(Exception):
    """Base class of all regentree errors; the CLI prints its message on one line and exits non-zero."""


class InvalidInputError(RegentreeError, ValueError):
    """Input data or arguments are malformed: shape, dtype, NaN, pixel range, labels, unknown files."""


class NonNumericInputError(InvalidInputError, TypeError):
    """Input data hold entries that are not numbers (an object array with a dict in it): a wrong type, as
    `float()` says of such an entry, so it is a `TypeError` as well."""


class ModelFolderError(RegentreeError):
    """A model folder is missing, corrupt, tampered with, or of another format version."""


class ConfigError(RegentreeError, ValueError):
    """A configuration value or file is invalid."""


def __getattr__(name: str) -> type:
    """`NotFittedError`, built on first use: it subclasses scikit-learn's, whose import is slow (PEP 562)."""
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sklearn.exceptions import NotFittedError as sklearn_not_fitted

    error = type("NotFittedError", (RegentreeError, sklearn_not_fitted),
                 {"__doc__": "An estimator was used before `fit`.", "__module__": __name__})
    globals()["NotFittedError"] = error
    return error


class TrainingDivergedError(RegentreeError, ArithmeticError):
    """A VAE's training loss became NaN or infinite (usually a learning rate far too high)."""
