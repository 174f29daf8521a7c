"""Fixtures shared by the unit tests: the model's training run, the inference handler with its fake endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import motor_adapters.clients
from tests.conftest import FakeAws
from tests.support import FakeSageMakerRuntime, load_handler, once_per_run

SLOW = {
    "test_historian_fit.py": "trains on a full-size foreign historian export (about 2.5 minutes of two cores)",
}
"""Modules marked `slow`: `make unit` and `make test-runtime` leave them out, `make test` runs them. Each trains on
a data set whose full size is what its assertions mean, so it cannot be made quick."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW and item.path.parent.name == "unit":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def small_model_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One small but real `model/train.py` run: 8 motors wearing four times as fast for 120 days, 60 rounds.

    Returns its metrics and its output directory (artifact, metrics, plots, model card, exported dataset).
    Trained once per test run: pytest-xdist's workers share it through the run's temporary folder.
    """
    from model.train import train

    def run(out: Path) -> dict[str, Any]:
        return train(
            motors=8,
            days=120,
            seed=3,
            test_fraction=0.25,
            validation_fraction=0.0,
            rounds=60,
            workers=2,
            out=out,
            card_path=out / "model-card.md",
            wear_scale=4.0,
            export_dataset=out / "dataset",
            log=lambda _line: None,
        )

    return once_per_run(tmp_path_factory, "small-model", run)


@pytest.fixture
def sagemaker() -> FakeSageMakerRuntime:
    return FakeSageMakerRuntime()


@pytest.fixture
def inference(aws: FakeAws, sagemaker: FakeSageMakerRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = load_handler("inference")
    other = motor_adapters.clients.client  # another fixture's stand-in for another service, or the real one

    def client(service: str, **kwargs: Any) -> Any:
        return sagemaker if service == "sagemaker-runtime" else other(service, **kwargs)

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    return module
