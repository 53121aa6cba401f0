"""Find a candidate model: ``MODULE:ATTRIBUTE`` or a joblib / pickle file."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

__all__ = [
    "ModelLoadError",
    "UserCodeError",
    "exception_line",
    "load_model",
    "load_model_file",
    "model_label",
]


class ModelLoadError(ValueError):
    """The named model cannot be loaded or used; the message names the value."""


class UserCodeError(ModelLoadError):
    """The user's module raised while it was imported, or its class when instantiated."""


def exception_line(exc: BaseException) -> str:
    """``Type: first line of the message``: one line however long the exception's text.

    Examples
    --------
    >>> exception_line(RuntimeError("no GPU\nsee the log")), exception_line(KeyError())
    ('RuntimeError: no GPU', 'KeyError')
    """
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_usable(model: Any, what: str) -> Any:
    if hasattr(model, "predict_batch") or hasattr(model, "predict") or callable(model):
        return model
    raise ModelLoadError(
        f"{what} is a {type(model).__name__}, which is not callable and has no "
        "predict or predict_batch method"
    )


def load_model(spec: str) -> Any:
    """The object named by ``"package.module:attribute"`` (dots allowed in the attribute).

    A class is instantiated without arguments, so ``module:MyModel`` works like
    ``module:MyModel()`` would.

    Examples
    --------
    >>> load_model("math:sqrt")(16.0)
    4.0
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ModelLoadError(f"{spec!r} is not MODULE:CALLABLE (e.g. mypkg.models:churn_v2)")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"cannot import module {module_name!r} of {spec!r}: {exception_line(exc)}"
        ) from exc
    except Exception as exc:  # the module's own code raised (SyntaxError included)
        raise UserCodeError(
            f"{spec!r}: module {module_name} raised at import, before {attribute} could be "
            f"loaded: {exception_line(exc)}"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ModelLoadError(
                f"{spec!r}: {module_name} has no attribute {attribute!r}"
            ) from None
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise UserCodeError(
                f"{spec!r}: class {target.__name__} of module {module_name} cannot be "
                f"instantiated without arguments: {exception_line(exc)}"
            ) from exc
    return _check_usable(target, repr(spec))


def load_model_file(path: Path) -> Any:
    """An estimator or model object saved with ``joblib.dump`` or ``pickle.dump``.

    Only load files you trust: unpickling runs code from the file.
    """
    if not path.is_file():
        raise ModelLoadError(f"model file {str(path)!r} does not exist")
    try:
        import joblib
    except ImportError:  # joblib comes with the "demo" extra; plain pickles work without it
        joblib = None
    try:
        if joblib is not None:
            model = joblib.load(path)
        else:
            with path.open("rb") as handle:
                model = pickle.load(handle)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load model file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return _check_usable(model, f"model file {str(path)!r}")


def model_label(spec: str | None, path: Path | None) -> str:
    """A short name for a model spec or file, used when no ``--name`` is given.

    Examples
    --------
    >>> model_label("mypkg.models:churn_v2", None)
    'churn_v2'
    >>> from pathlib import Path
    >>> model_label(None, Path("/models/churn.joblib"))
    'churn'
    """
    if spec:
        return spec.rpartition(":")[2].rpartition(".")[2] or spec
    if path is not None:
        return path.stem
    return "model"
