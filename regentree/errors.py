"""Exception types: every user-facing failure is one of these, with a one-line message naming what and where."""


from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class RegentreeError(Exception):
    """Base class of all regentree errors; the CLI prints its message on one line and exits non-zero."""


class InvalidInputError(RegentreeError, ValueError):
    """Input data or arguments are malformed: shape, dtype, NaN, pixel range, labels, unknown files."""


class ModelFolderError(RegentreeError):
    """A model folder is missing, corrupt, tampered with, or of another format version."""


class ConfigError(RegentreeError, ValueError):
    """A configuration value or file is invalid."""


class NotFittedError(RegentreeError, _SklearnNotFittedError):
    """An estimator was used before `fit`."""


class TrainingDivergedError(RegentreeError, ArithmeticError):
    """A VAE's training loss became NaN or infinite (usually a learning rate far too high)."""
