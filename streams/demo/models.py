"""The demo's data and models: scikit-learn's breast-cancer dataset, four classifiers.

* ``v1`` (live): logistic regression on two features (mean radius, mean texture);
* ``v2`` (better candidate): gradient boosting on all 30 features;
* ``v3`` (worse candidate): logistic regression on two weak texture features;
* ``v4`` (costly candidate): a soft-voting ensemble of a 30-tree random forest, gradient
  boosting and a logistic regression on all 30 features -- the most accurate, and several
  times live's CPU per prediction.

The app and the shadow workers run the same code per request (:meth:`DemoModel.predict_one`;
a worker's batch is answered one request at a time), so a candidate's CPU per prediction,
measured in its worker, compares like with like with live's, measured in the app.

And the delivery example's ETA regressors (:func:`streams.downstream.delivery.train_eta_models`):
``v1`` (live) linear on distance and prep time, ``v2`` (candidate) gradient boosting that
also sees traffic but predicts 3.5 minutes early; see :func:`save_eta_model`.

Models are fitted on plain arrays (column order = their ``features``);
:meth:`DemoModel.predict_one` builds that row from a request's named features.
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
    ['v1', 'v2', 'v3', 'v4']
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

    def answer(self, features: dict[str, Any]) -> dict[str, Any]:
        """:meth:`predict_one` as a shadow worker's output (``value``, ``probabilities``)."""
        value, probabilities = self.predict_one({k: float(v) for k, v in features.items()})
        return {"value": str(value), "probabilities": probabilities}

    def predict_batch(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per row, each computed as the app computes live's: one request per
        call, so the worker's CPU share per prediction is the CPU of one request."""
        return [self.answer(row) for row in rows]

    def save(self, directory: Path) -> Path:
        """``joblib.dump`` this model (for ``--model-file``) to ``<directory>/<version>.joblib``."""
        import joblib

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}.joblib"
        joblib.dump(self, path)
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
FOREST_TREES = 30
"""Trees of the costly candidate's forest: with its other members about 2.5 ms of CPU per
request, where live's logistic regression takes 0.1-0.4 ms."""


def _costly_ensemble(seed: int) -> Any:
    """Soft vote of a random forest, gradient boosting and a scaled logistic regression.

    Every member runs in the calling thread (``n_jobs=None``: no threads the thread CPU clock
    would not see); the forest's trees are most of the cost. The linear member keeps every
    probability above 0, so a confident miss does not blow up the log loss.
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        RandomForestClassifier,
        VotingClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    members = [
        ("forest", RandomForestClassifier(FOREST_TREES, min_samples_leaf=2, random_state=seed)),
        ("boosting", GradientBoostingClassifier(random_state=seed)),
        ("linear", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
    ]
    return VotingClassifier(members, voting="soft")


def train_models(data: DemoData, seed: int = SEED) -> list[DemoModel]:
    """Fit the live model and the three candidates on the training part."""
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
        DemoModel(
            "v4",
            f"ensemble: {FOREST_TREES}-tree forest + boosting + logistic, 30 features",
            fit(_costly_ensemble(seed), data.features),
            data.features,
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
    return _better_candidate().answer(features)
