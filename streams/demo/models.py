"""The demo's data and models: scikit-learn's breast-cancer dataset, three classifiers.

* ``v1`` (live): logistic regression on two features (mean radius, mean texture);
* ``v2`` (better candidate): gradient boosting on all 30 features;
* ``v3`` (worse candidate): logistic regression on two weak texture features.

And the delivery example's ETA regressors (:func:`streams.downstream.delivery.train_eta_models`):
``v1`` (live) linear on distance and prep time, ``v2`` (candidate) gradient boosting that
also sees traffic but predicts 3.5 minutes early; see :func:`save_eta_model`.

Models are fitted on plain arrays (column order = their ``features``), so the shadow
worker's ``--features`` option gives them the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ETA_DESCRIPTIONS",
    "DemoData",
    "DemoModel",
    "candidate",
    "load_data",
    "save_eta_model",
    "train_models",
]

SEED = 7


def _snake(name: str) -> str:
    return name.replace(" ", "_")


@dataclass(frozen=True, slots=True)
class DemoData:
    """Train / held-out split of the dataset; labels are 0 (malignant) and 1 (benign)."""

    features: tuple[str, ...]
    x_train: np.ndarray[Any, Any]
    y_train: np.ndarray[Any, Any]
    x_test: np.ndarray[Any, Any]
    y_test: np.ndarray[Any, Any]

    def columns(self, names: tuple[str, ...]) -> list[int]:
        return [self.features.index(n) for n in names]


@dataclass(frozen=True, slots=True)
class DemoModel:
    """A fitted estimator with the feature names of its columns.

    Examples
    --------
    >>> models = train_models(load_data())
    >>> [m.version for m in models]
    ['v1', 'v2', 'v3']
    >>> models[0].predict_one({"mean_radius": 20.0, "mean_texture": 25.0})[0]
    0
    """

    version: str
    description: str
    estimator: Any
    features: tuple[str, ...]

    def predict_one(self, features: dict[str, float]) -> tuple[int, dict[str, float]]:
        """Class and class probabilities of one request."""
        row = np.array([[features[name] for name in self.features]], dtype=np.float64)
        probabilities = self.estimator.predict_proba(row)[0]
        classes = [str(c) for c in self.estimator.classes_]
        best = int(np.argmax(probabilities))
        return int(self.estimator.classes_[best]), dict(
            zip(classes, map(float, probabilities), strict=True)
        )

    def save(self, directory: Path) -> Path:
        """``joblib.dump`` the estimator to ``<directory>/<version>.joblib``."""
        import joblib

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}.joblib"
        joblib.dump(self.estimator, path)
        return path


def load_data(seed: int = SEED) -> DemoData:
    """The dataset, split 60/40 (stratified) into training and held-out parts."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    dataset = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.data, dataset.target, test_size=0.4, random_state=seed, stratify=dataset.target
    )
    names = tuple(_snake(n) for n in dataset.feature_names)
    return DemoData(names, x_train, y_train, x_test, y_test)


LIVE_FEATURES = ("mean_radius", "mean_texture")
WORSE_FEATURES = ("mean_texture", "worst_texture")


def train_models(data: DemoData, seed: int = SEED) -> list[DemoModel]:
    """Fit the live model and the two candidates on the training part."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    def fit(estimator: Any, names: tuple[str, ...]) -> Any:
        return estimator.fit(data.x_train[:, data.columns(names)], data.y_train)

    return [
        DemoModel(
            "v1",
            "logistic regression, 2 features",
            fit(LogisticRegression(max_iter=1000), LIVE_FEATURES),
            LIVE_FEATURES,
        ),
        DemoModel(
            "v2",
            "gradient boosting, 30 features",
            fit(GradientBoostingClassifier(random_state=seed), data.features),
            data.features,
        ),
        DemoModel(
            "v3",
            "logistic regression, 2 texture features",
            fit(LogisticRegression(max_iter=1000), WORSE_FEATURES),
            WORSE_FEATURES,
        ),
    ]


ETA_DESCRIPTIONS = {
    "v1": "linear regression on distance and prep time",
    "v2": "gradient boosting with traffic, trained 3.5 min early",
}
"""What the ETA models of :func:`streams.downstream.delivery.train_eta_models` are."""


def save_eta_model(model: Any, directory: Path, version: str) -> Path:
    """``joblib.dump`` an ``EtaModel`` (it has ``predict_batch``) for ``--model-file``.

    Examples
    --------
    >>> import tempfile
    >>> from streams.downstream.delivery import train_eta_models
    >>> _, early = train_eta_models(n=200)
    >>> save_eta_model(early, Path(tempfile.mkdtemp()), "v2").name
    'eta-v2.joblib'
    """
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"eta-{version}.joblib"
    joblib.dump(model, path)
    return path


@cache
def _better_candidate() -> DemoModel:
    return train_models(load_data())[1]


def candidate(features: dict[str, Any]) -> dict[str, Any]:
    """The better candidate (``v2``) as a per-record callable, for ``--model MODULE:CALLABLE``.

    docker-compose runs ``shadow-eval worker --model streams.demo.models:candidate``; the
    model is trained on first use (about a second).

    Examples
    --------
    >>> data = load_data()
    >>> answer = candidate(dict(zip(data.features, data.x_test[0])))
    >>> sorted(answer)
    ['probabilities', 'value']
    """
    model = _better_candidate()
    value, probabilities = model.predict_one({k: float(v) for k, v in features.items()})
    return {"value": str(value), "probabilities": probabilities}
