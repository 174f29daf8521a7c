"""The benchmark runner's quick mode: a results file of ratios, each computed from two figures it measured.

No timing is asserted (the machine is shared and noisy): only that every figure was measured, is a
positive finite number, and that each ratio is the one its two figures make.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import embedded_model
from benchmarks.report import XGBOOST_DISTRIBUTION, Figure, ratio
from benchmarks.run import BENCHMARKS, parse_skip

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ("handler_init", "warm_inference", "embedded_model", "domain_throughput")
SKIPPED = ("local_stack", "training")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """One `python -m benchmarks.run --quick`, the local stack and training left out: its results, stdout, folder."""
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.run", "--quick", "--skip", ",".join(SKIPPED), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a safety net, not a measure: the quick run takes 1-2 minutes, more on a loaded machine
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "latest.json").read_text()), done.stdout, out


def _positive_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_the_results_file_records_the_machine_and_the_run(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    results, _, _ = quick_run

    assert results["schema_version"] == 1
    assert results["mode"] == "quick"
    host = results["machine"]
    assert host["cpu_model"]
    assert host["cores"] >= 1
    assert host["python"].count(".") == 2
    assert host["packages"][XGBOOST_DISTRIBUTION]
    assert host["packages"]["aws-lambda-powertools"]
    assert host["date"].startswith("20")
    assert list(results["benchmarks"]) == list(BENCHMARKS)


def test_skipped_benchmarks_say_so_and_carry_no_figures(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    results, _, _ = quick_run

    for name in SKIPPED:
        entry = results["benchmarks"][name]
        assert entry["status"] == "skipped"
        assert "ratios" not in entry


def test_every_ratio_is_positive_finite_and_made_of_its_two_measured_figures(
    quick_run: tuple[dict[str, Any], str, Path],
) -> None:
    results, _, _ = quick_run

    for name in MEASURED:
        entry = results["benchmarks"][name]
        assert entry["status"] == "done", entry.get("reason")
        assert entry["ratios"], f"{name} measured nothing"
        for item in entry["ratios"]:
            measured, floor = item["measured"], item["floor"]
            assert _positive_finite(measured["value"]), item
            assert _positive_finite(floor["value"]), item
            assert measured["unit"] == floor["unit"]
            assert measured["label"]
            assert floor["label"]
            assert _positive_finite(item["ratio"]), item
            expected = (
                measured["value"] / floor["value"] if item["better"] == "lower" else floor["value"] / measured["value"]
            )
            assert item["ratio"] == pytest.approx(expected, rel=1e-9)


def test_each_function_and_the_handler_parts_are_measured(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    results, _, _ = quick_run
    benchmarks = results["benchmarks"]

    init_names = {item["name"] for item in benchmarks["handler_init"]["ratios"]}
    assert init_names == {
        "InferenceFunction init",
        "OperatorActionFunction init",
        "AlertFunction init",
        "required libraries alone init",
    }
    warm = benchmarks["warm_inference"]["details"]
    assert warm["outcomes"] == {"applied": warm["readings"]}
    parts = warm["cpu_us_per_reading"]
    assert parts["total_mean"] == pytest.approx(
        parts["moto_mean"] + parts["model_server_mean"] + parts["lambda_own_mean"]
    )
    assert parts["moto_mean"] > 0
    assert parts["model_server_mean"] > 0
    # The state's conditional PutItem and the endpoint's invocation: the environment's copy of the state it
    # wrote spares the GetItem (a stale copy costs a failed PutItem and a second one, so a little over 2).
    assert 2 <= warm["moto_requests_per_reading"] < 2.5
    # The three calls alone (answered at once) are a part of what the handler does for a reading.
    assert 0 < parts["aws_client_calls_mean"] < parts["lambda_own_mean"]
    batched = warm["batched"]
    assert batched["outcomes"] == {"applied": batched["readings"]}
    # A motor's five readings in a batch share its state read and PutItem (plus the outbox's when it raised).
    assert batched["moto_requests_per_reading"] < 1
    one_each = warm["batched_one_per_motor"]
    assert one_each["readings_per_motor"] == 1
    assert one_each["outcomes"] == {"applied": one_each["readings"]}
    # Warm batches start from the environment's copies of the states it wrote: no read at all (a batch reads
    # the motors it has no copy of with one BatchGetItem: tests/unit/test_state_item.py).
    requests = one_each["moto_requests_per_batch"]
    assert "dynamodb.BatchGetItem" not in requests
    assert "dynamodb.GetItem" not in requests
    assert requests["dynamodb.PutItem"] >= one_each["batch_readings"]


def test_the_embedded_model_is_measured_three_ways_and_pure_python_and_compiled_agree_with_xgboost(
    quick_run: tuple[dict[str, Any], str, Path],
) -> None:
    results, _, _ = quick_run
    entry = results["benchmarks"]["embedded_model"]

    measured = {
        "embedded pure Python (shipped), CPU per row, as the function runs it",
        "embedded xgboost-cpu, CPU per row",
        "embedded drivers, pure-Python TreeSHAP vs XGBoost pred_contribs, CPU per row",
        "embedded first prediction, pure Python (shipped) vs xgboost-cpu",
        "embedded model on disk, pure Python (shipped) vs xgboost-cpu",
    }
    compiled = {
        "embedded compiled (tl2cgen), CPU per row",
        "embedded first prediction, compiled vs xgboost-cpu",
        "embedded model on disk, compiled vs xgboost-cpu",
    }
    details = entry["details"]
    assert details["shipped"] == "pure_python"
    # Both evaluate the same trees: their probabilities are XGBoost's, to float32 rounding.
    assert 0 <= details["max_abs_difference"]["pure_python"] < 1e-6
    assert 0 <= details["max_abs_contribution_difference"]["pure_python"] < 1e-4
    assert details["rows"] == 20
    assert details["drivers_rows"]["rows"] > 0
    assert set(details["shipped_bytes"]) == {"boosted_trees.py", "artifact.py", "embedded_predictor.py"}
    assert set(details["layer_bytes"]) == {XGBOOST_DISTRIBUTION, "numpy", "scipy"}
    assert all(size > 1_000_000 for size in details["layer_bytes"].values())
    if not embedded_model.CAN_COMPILE:
        # tl2cgen and treelite have no wheels for Linux on ARM: the run says so instead of failing.
        assert {item["name"] for item in entry["ratios"]} == measured
        assert "tl2cgen and treelite are not installed" in details["compiled"]["not_measured"]
        return
    assert {item["name"] for item in entry["ratios"]} == measured | compiled
    assert 0 <= details["max_abs_difference"]["compiled"] < 1e-6
    assert details["library_bytes"] > 0


def _mypyc_builds_for_this_python() -> bool:
    """Whether this interpreter has mypyc, or .tools/dev's (where `make setup` puts mypy) runs on its version."""
    if importlib.util.find_spec("mypyc") is not None:
        return True
    tools = ROOT / ".tools" / "dev" / "bin" / "python"
    if not tools.exists():
        return False
    version = "import sys; print(sys.version_info[:2])"
    done = subprocess.run([str(tools), "-c", version], capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip() == str(sys.version_info[:2])


def test_the_domain_is_measured_as_shipped_and_compiled_by_mypyc_to_the_same_states(
    quick_run: tuple[dict[str, Any], str, Path],
) -> None:
    results, _, _ = quick_run
    entry = results["benchmarks"]["domain_throughput"]
    compiled = entry["details"]["mypyc"]

    if not _mypyc_builds_for_this_python():
        # No mypyc that builds for this Python: the pure pass alone, and the reason names the version.
        assert [item["name"] for item in entry["ratios"]] == ["compute_features + detector.step"]
        assert "no mypyc for Python {}.{}".format(*sys.version_info[:2]) in compiled["not_measured"]
        return
    assert [item["name"] for item in entry["ratios"]] == [
        "compute_features + detector.step",
        "the same, features, detector and state compiled by mypyc",
    ]
    assert compiled["same_final_states"] is True
    assert compiled["events"]["pure"] == compiled["events"]["compiled"]
    assert len(compiled["readings_per_s"]["pure"]) == len(compiled["readings_per_s"]["compiled"]) == 2


def test_the_table_is_printed_and_written_beside_the_json(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    results, stdout, out = quick_run

    table = (out / "latest.md").read_text()
    assert table in stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]
    ratios = [item for entry in results["benchmarks"].values() for item in entry.get("ratios", [])]
    assert len(rows) == len(ratios) + len(SKIPPED)
    for item in ratios:
        assert f"| {item['name']} |" in table


@pytest.mark.parametrize(
    ("measured", "floor"),
    [
        (Figure("m", 0.0, "s"), Figure("f", 1.0, "s")),
        (Figure("m", 1.0, "s"), Figure("f", float("nan"), "s")),
        (Figure("m", float("inf"), "s"), Figure("f", 1.0, "s")),
        (Figure("m", 1.0, "s"), Figure("f", -2.0, "s")),
        (Figure("m", 1.0, "s"), Figure("f", 1.0, "ms")),
    ],
)
def test_a_ratio_is_refused_unless_both_figures_are_positive_finite_in_one_unit(
    measured: Figure, floor: Figure
) -> None:
    with pytest.raises(ValueError, match=r"not a positive finite number|measured in"):
        ratio("x", measured, floor)


def test_a_ratio_is_the_cost_relative_to_the_floor_whichever_way_the_figure_points() -> None:
    assert ratio("t", Figure("m", 3.0, "s"), Figure("f", 1.5, "s"))["ratio"] == 2.0
    assert ratio("r", Figure("m", 50.0, "1/s"), Figure("f", 200.0, "1/s"), better="higher")["ratio"] == 4.0


def test_skip_names_only_known_benchmarks() -> None:
    assert parse_skip("") == set()
    assert parse_skip("local_stack, training") == {"local_stack", "training"}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown benchmark"):
        parse_skip("local-stack")
