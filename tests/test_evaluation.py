"""The labelled scenario library: generation, and the detector's measured behaviour on every class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from smb_fanout.config import load_config
from smb_fanout.evaluation import (
    ClassResult,
    EvaluationResult,
    log_to_mlflow,
    render_page,
    run_evaluation,
    unexpected_alerts,
)
from smb_fanout.generator import FleetSpec, generate_fleet
from smb_fanout.generator.scenarios import ATTACK, CLASSES

# Small enough for the test suite: every class once, 16 days of training.
SMALL_LIBRARY = FleetSpec(
    workstations=48,
    file_servers=8,
    days=24,
    attacks=0,
    dhcp_changes=0,
    late_joiners=3,
    scenarios=tuple(CLASSES),
    scenario_repeats=1,
    seed=11,
)


def test_library_labels_every_class(tmp_path: Path) -> None:
    fleet = generate_fleet(SMALL_LIBRARY, tmp_path)
    assert fleet.scenarios_path is not None
    labels = json.loads(fleet.scenarios_path.read_text(encoding="utf-8"))
    assert [label["scenario"] for label in labels] == list(CLASSES)
    sweep = next(label for label in labels if label["scenario"] == "fast_fanout")
    assert sweep["kind"] == ATTACK
    assert len(sweep["host_ids"]) == 1
    assert 8 <= len(sweep["destination_ips"]) <= 25
    update = next(label for label in labels if label["scenario"] == "os_update_fleet_change")
    assert len(update["destination_ips"]) == 5
    assert len(update["host_ids"]) == 48 - SMALL_LIBRARY.late_joiners


def test_library_is_reproducible(tmp_path: Path) -> None:
    first = generate_fleet(SMALL_LIBRARY, tmp_path / "a")
    second = generate_fleet(SMALL_LIBRARY, tmp_path / "b")
    assert first.event_count == second.event_count
    for path in sorted(first.events_dir.glob("*.jsonl")):
        assert path.read_bytes() == (second.events_dir / path.name).read_bytes()


def test_renamed_host_keeps_its_id(tmp_path: Path) -> None:
    fleet = generate_fleet(SMALL_LIBRARY, tmp_path)
    assert fleet.scenarios_path is not None
    [renamed] = [
        s for s in json.loads(fleet.scenarios_path.read_text(encoding="utf-8")) if s["scenario"] == "renamed_host"
    ]
    host_id, old_name = renamed["host_ids"][0], renamed["host_names"][0]
    names = set()
    for path in fleet.events_dir.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["host_id"] == host_id:
                names.add(event["host_name"])
    assert names == {old_name, "LT-" + old_name.split("-")[-1]}


def test_fleet_without_scenarios_writes_no_labels(tmp_path: Path) -> None:
    fleet = generate_fleet(FleetSpec(workstations=6, days=8, attacks=0, late_joiners=1, dhcp_changes=0), tmp_path)
    assert fleet.scenarios_path is None
    assert not (tmp_path / "scenarios.json").exists()


def test_unknown_scenario_class_rejected(tmp_path: Path) -> None:
    expected = r"FleetSpec\.scenarios: unknown scenario class printer_storm: use one of fast_fanout"
    with pytest.raises(ValueError, match=expected):
        generate_fleet(FleetSpec(workstations=6, days=8, attacks=0, scenarios=("printer_storm",)), tmp_path)


def _class_result(scenario: str, low: int, medium: int = 0) -> ClassResult:
    cls = CLASSES[scenario]
    return ClassResult(scenario, cls.kind, cls.expected, 4, low + medium, low, medium, 0, None, None, True)


def test_documented_low_alerts_are_not_unexpected() -> None:
    classes = [
        _class_result("backup_new_vms", low=4),
        _class_result("new_file_server", low=1),
        _class_result("fast_fanout", low=0, medium=4),
    ]
    # 6 alerts not on an attack: 4 documented Low backup alerts, 1 on the new
    # file server's clients and 1 outside every scenario.
    assert unexpected_alerts(6, classes) == 2


@pytest.fixture(scope="module")
def evaluated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> EvaluationResult:
    config = load_config("local", [f"storage.local_root={tmp_path_factory.mktemp('evaluation')}"])
    return run_evaluation(spark, config, SMALL_LIBRARY)


def test_every_attack_class_detected(evaluated: EvaluationResult) -> None:
    attacks = {item.scenario: item for item in evaluated.classes if item.kind == ATTACK}
    assert set(attacks) == {name for name, cls in CLASSES.items() if cls.kind == ATTACK}
    for name, item in attacks.items():
        assert item.recall == 1.0, name
        assert item.precision == 1.0, name
        assert item.median_minutes_to_detect is not None, name


def test_scan_and_tool_alerts_are_medium(evaluated: EvaluationResult) -> None:
    by_name = {item.scenario: item for item in evaluated.classes}
    assert by_name["failed_scan"].medium_alerts == 1
    assert by_name["user_mode_tool"].medium_alerts == 1


def test_benign_classes_as_documented(evaluated: EvaluationResult) -> None:
    benign = [item for item in evaluated.classes if item.kind != ATTACK]
    assert {item.scenario for item in benign} == {name for name, cls in CLASSES.items() if cls.kind != ATTACK}
    for item in benign:
        assert item.meets_expectation, item
        assert item.medium_alerts == 0, item.scenario


def test_fleet_change_raises_no_alert(evaluated: EvaluationResult) -> None:
    update = next(item for item in evaluated.classes if item.scenario == "os_update_fleet_change")
    assert update.instances == 1
    assert update.alerted == 0


def test_no_alert_outside_attacks(evaluated: EvaluationResult) -> None:
    assert evaluated.alerts == evaluated.attack_alerts
    assert evaluated.unlabelled_alerts == 0
    assert evaluated.precision == 1.0
    assert evaluated.false_alerts_per_1000_host_days == 0.0
    assert (evaluated.unexpected_alerts, evaluated.unexpected_alerts_per_1000_host_days) == (0, 0.0)


def test_results_page_and_mlflow_run(evaluated: EvaluationResult, tmp_path: Path) -> None:
    import mlflow

    page = render_page(evaluated, "smb-fanout evaluate --workstations 48")
    assert "| fast_fanout | attack | alert | 1 | 1 | 1.00 |" in page
    assert "Written by `smb-fanout evaluate --workstations 48`" in page
    assert "0.00 per 1,000 host-days (target at most 0.5: met)" in page
    config = load_config("local", [f"storage.local_root={tmp_path}"])
    run_id = log_to_mlflow(config, evaluated)
    run = mlflow.get_run(run_id)
    assert run.data.metrics["recall.fast_fanout"] == 1.0
    assert run.data.metrics["precision"] == 1.0
    assert run.data.tags["smb_fanout.job"] == "evaluate"
