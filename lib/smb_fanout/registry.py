"""MLflow behind one interface: tracking store, fit runs, model registration and the champion alias."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from smb_fanout import checkpoints
from smb_fanout.config import Config

logger = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class ModelNotFoundError(RuntimeError):
    """Raised when no model version carries the configured alias."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str


def tracking_uris(config: Config) -> tuple[str, str]:
    """Tracking and registry URIs; empty settings mean a SQLite store under `storage.local_root`."""
    if config.mlflow.tracking_uri:
        tracking = config.mlflow.tracking_uri
    else:
        store = config.local_root / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        tracking = f"sqlite:///{store / 'mlflow.db'}"
    return tracking, config.mlflow.registry_uri or tracking


def artifact_location(config: Config) -> str | None:
    if config.mlflow.tracking_uri:
        return None
    return (config.local_root / "mlflow" / "artifacts").as_uri()


def configure(config: Config) -> Any:
    """Point MLflow at the configured stores and return the experiment id."""
    import mlflow

    tracking, registry = tracking_uris(config)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    experiment = mlflow.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(config.mlflow.experiment, artifact_location=artifact_location(config))


def _threshold_model_class() -> type:
    from mlflow.pyfunc import PythonModel

    class ThresholdModel(PythonModel):
        """Decision rule of a fitted model; per-host thresholds live in `smb_thresholds`.

        `predict` takes `new_destination_count` and `threshold` columns and
        returns whether each window is abnormal.
        """

        def __init__(self, min_new_destinations: int) -> None:
            self.min_new_destinations = min_new_destinations

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
            counts = model_input["new_destination_count"]
            return (counts >= self.min_new_destinations) & (counts > model_input["threshold"])

    return ThresholdModel


def register_fit(config: Config, run_id: str, min_new_destinations: int, move_alias: bool = True) -> ModelVersion:
    """Log the decision rule in the active run and register it; point the alias at it unless `move_alias` is false.

    A version registered without the alias is a candidate: `promote` moves
    the alias to it later.
    """
    import mlflow
    from mlflow import MlflowClient

    # MLflow warns that a pickled python_model runs code when it is loaded; the
    # model is only ever loaded from this project's own registry.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model_class = _threshold_model_class()
        info = _log_model(mlflow, model_class(min_new_destinations), config.mlflow.model_name)
    version = str(info.registered_model_version)
    checkpoints.reached("fit.version_registered")
    if not move_alias:
        MlflowClient().set_model_version_tag(config.mlflow.model_name, version, "candidate", "true")
        logger.info("registered %s version %s as a candidate", config.mlflow.model_name, version)
        return ModelVersion(config.mlflow.model_name, version, run_id)
    MlflowClient().set_registered_model_alias(config.mlflow.model_name, config.mlflow.alias, version)
    logger.info("registered %s version %s as @%s", config.mlflow.model_name, version, config.mlflow.alias)
    return ModelVersion(config.mlflow.model_name, version, run_id)


def _log_model(mlflow: Any, model: Any, name: str) -> Any:
    return mlflow.pyfunc.log_model(
        name="threshold_model",
        python_model=model,
        pip_requirements=["mlflow-skinny"],
        registered_model_name=name,
    )


def champion(config: Config) -> ModelVersion:
    """Return the model version the alias points to.

    Raises:
        ModelNotFoundError: no version has the alias yet; run the fit job first.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(config)
    try:
        version = MlflowClient().get_model_version_by_alias(config.mlflow.model_name, config.mlflow.alias)
    except MlflowException as err:
        raise ModelNotFoundError(
            f"no version of model {config.mlflow.model_name!r} has alias @{config.mlflow.alias}: "
            "run `smb-fanout fit` first"
        ) from err
    if version.run_id is None:
        raise ModelNotFoundError(f"model version {version.version} has no run id")
    return ModelVersion(config.mlflow.model_name, str(version.version), version.run_id)


def model_version(config: Config, version: str) -> ModelVersion:
    """Look up one registered version of the configured model.

    Raises:
        ModelNotFoundError: the version is not registered.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(config)
    try:
        found = MlflowClient().get_model_version(config.mlflow.model_name, version)
    except MlflowException as err:
        raise ModelNotFoundError(
            f"model {config.mlflow.model_name!r} has no version {version!r}: "
            "list the versions in the MLflow UI or run `smb-fanout fit --candidate`"
        ) from err
    if found.run_id is None:
        raise ModelNotFoundError(f"model version {version} has no run id")
    return ModelVersion(config.mlflow.model_name, str(found.version), found.run_id)


def set_alias(config: Config, version: str) -> None:
    """Move the alias to another version, for example to roll back a fit."""
    from mlflow import MlflowClient

    configure(config)
    MlflowClient().set_registered_model_alias(config.mlflow.model_name, config.mlflow.alias, version)


def plot_path(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
