"""The operator scripts: friendly answers, not tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import check_config, sam_local_env


def test_check_config_prints_the_configuration_in_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = tmp_path / "overrides.json"
    document.write_text('{"schedule": {"service_interval_h": 500}}')

    assert check_config.main([str(document)]) == 0

    assert json.loads(capsys.readouterr().out)["schedule"]["service_interval_h"] == 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "must be a JSON object, not list"),
        ("[1, 2]", "must be a JSON object, not list"),
        ("{", "not JSON"),
        ('{"schedule": {"service_interval_h": -1}}', "schedule.service_interval_h: Input should be greater than 0"),
        ('{"latch": "sometimes"}', "latch: Input should be a valid boolean"),
    ],
)
def test_check_config_says_why_a_document_would_be_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    document = tmp_path / "overrides.json"
    document.write_text(text)

    assert check_config.main([str(document)]) == 1

    assert message in capsys.readouterr().err


def test_check_config_names_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config.main(["/no/such/overrides.json"]) == 1
    assert "cannot read /no/such/overrides.json" in capsys.readouterr().err


def test_sam_local_env_explains_missing_credentials() -> None:
    from botocore.exceptions import NoRegionError

    class NoRegion:
        def describe_stacks(self, **_: object) -> None:
            raise NoRegionError

    with pytest.raises(SystemExit, match="configure AWS credentials and a region"):
        sam_local_env.main(["--stack", "s"], cloudformation=NoRegion())
