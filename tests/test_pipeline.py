"""Integration: the whole pipeline on a generated fleet and on a real trace replayed over generated history."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from smb_fanout.backtest import log_backtest, run_backtest
from smb_fanout.cli import run_app
from smb_fanout.config import Config, ExclusionsConfig, HostExclusion, ProcessExclusion, load_config
from smb_fanout.demo import DemoResult, run_replay
from smb_fanout.explain import NotExplainableError, explain_alert
from smb_fanout.fit.job import NothingToFitError
from smb_fanout.pipeline import NoUsableEventsError, run_pipeline
from smb_fanout.registry import champion
from smb_fanout.score.detect import ABNORMAL
from smb_fanout.score.job import run_score, shadow_config
from smb_fanout.tables import Tables
from tests.alert_rows import write_tables
from tests.conftest import DEMO_SPEC as SPEC
from tests.conftest import FIXTURES, real_data

pytestmark = pytest.mark.integration


def labels(result: DemoResult) -> list[dict]:
    return json.loads((result.data_dir / "labels.json").read_text(encoding="utf-8"))


def test_demo_finds_every_attack(demo: DemoResult) -> None:
    assert demo.evaluation is not None
    assert demo.evaluation.missed_attacks == []
    assert len(demo.evaluation.detected_attacks) == SPEC.attacks


def test_demo_no_alert_on_ordinary_host(demo: DemoResult) -> None:
    assert demo.evaluation is not None
    assert demo.evaluation.false_positive_hosts == []


def test_one_alert_per_attacker(demo: DemoResult) -> None:
    attackers = sorted(label["host_id"] for label in labels(demo))
    assert sorted(alert["host_id"] for alert in demo.alerts) == attackers


def test_alert_lists_labelled_destinations(demo: DemoResult) -> None:
    by_host = {alert["host_id"]: alert for alert in demo.alerts}
    for label in labels(demo):
        alert = by_host[label["host_id"]]
        listed = sorted(d["destination_ip"] for d in alert["new_destinations"])
        assert listed == sorted(label["destination_ips"])
        assert alert["new_destination_count"] == len(label["destination_ips"])


def test_alert_fields_filled(demo: DemoResult, demo_config: Config) -> None:
    model = champion(demo_config)
    for alert in demo.alerts:
        assert alert["alert_name"] == ABNORMAL
        assert alert["mitre_tactic_id"] == "TA0008"
        assert alert["mitre_subtechnique_id"] == "T1021.002"
        assert alert["model_version"] == model.version
        assert alert["model_run_id"] == model.run_id
        assert alert["status"] == "open"
        assert alert["reason"].startswith(alert["host_name"])
        assert alert["suppressed_count"] == alert["detection_count"] - 1
        assert alert["detection_count"] >= 2
        assert alert["actor_processes"][0]["name"] == "System"


def test_score_rerun_leaves_alerts(spark: SparkSession, demo: DemoResult, demo_config: Config) -> None:
    table = Tables(demo_config).smb_alerts
    before = sorted(row.asDict(recursive=True).items() for row in table.read(spark).collect())
    score = demo.pipeline.score
    rerun = run_score(spark, demo_config, score.window_from, score.window_to)
    after = sorted(row.asDict(recursive=True).items() for row in table.read(spark).collect())
    assert rerun.alerts_opened == 0
    assert rerun.alerts_updated == 0
    assert after == before


def test_explain_reproduces_every_alert(spark: SparkSession, demo: DemoResult, demo_config: Config) -> None:
    for alert in demo.alerts:
        explanation = explain_alert(spark, demo_config, alert["alert_id"][:16])
        assert explanation.reproduced, explanation.differences
        assert explanation.stored is not None
        assert explanation.stored["window_end"] == explanation.detection["window_end"]
        listed = [d["destination_id"] for d in explanation.destinations]
        assert listed == [d["destination_id"] for d in alert["new_destinations"]]
        # Attack targets are workstations, which few hosts reach in training.
        assert max(d["fleet_hosts_in_training"] for d in explanation.destinations) < SPEC.workstations // 5
        assert explanation.detector["min_new_destinations"] == 5


def test_explain_command_prints_evidence(
    demo: DemoResult, demo_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = demo.alerts[0]
    run_app(["--set", f"storage.local_root={demo_config.storage.local_root}", "explain", alert["alert_id"][:16]])
    output = " ".join(capsys.readouterr().out.split())
    assert "the stored decision is reproduced" in output
    assert f"version {alert['model_version']}" in output
    assert alert["new_destinations"][0]["destination_ip"] in output


def test_backtest_replays_champion(spark: SparkSession, demo: DemoResult, demo_config: Config) -> None:
    """Replaying the scored range with the champion gives the demo's alerts, and the figures reach its run."""
    import mlflow

    model = champion(demo_config)
    score = demo.pipeline.score
    result = run_backtest(
        spark, demo_config, model.version, score.window_from, score.window_to, demo.data_dir / "labels.json"
    )
    assert result.alerts == len(demo.alerts)
    assert sum(result.alerts_per_day.values()) == result.alerts
    assert (result.attacks, result.attacks_detected) == (SPEC.attacks, SPEC.attacks)
    assert result.top_hosts_share == 1.0
    log_backtest(demo_config, result)
    metrics = mlflow.get_run(model.run_id).data.metrics
    assert metrics["backtest.recall"] == 1.0
    assert metrics["backtest.alerts"] == float(len(demo.alerts))
    assert "fleet_floor" in metrics
    tables = Tables(demo_config)
    assert tables.smb_alerts.read(spark).count() == len(demo.alerts)


def test_shadow_score_leaves_production(spark: SparkSession, demo: DemoResult, demo_config: Config) -> None:
    from mlflow import MlflowClient

    model = champion(demo_config)
    MlflowClient().set_registered_model_alias(model.name, "challenger", model.version)
    tables = Tables(demo_config)
    before = tables.smb_alerts.read(spark).count()
    score = demo.pipeline.score
    shadow = shadow_config(demo_config, "challenger")
    result = run_score(spark, shadow, score.window_from, score.window_to, job="score_shadow")
    assert result.model == model
    shadow_ids = sorted(row["alert_id"] for row in Tables(shadow).smb_alerts.read(spark).collect())
    assert shadow_ids == sorted(alert["alert_id"] for alert in demo.alerts)
    assert tables.smb_alerts.read(spark).count() == before
    jobs = [row["job"] for row in tables.detector_runs.read(spark).select("job").collect()]
    assert "score_shadow" in jobs


def test_allowlisted_score_counts_excluded_detections(
    spark: SparkSession, demo: DemoResult, demo_config: Config
) -> None:
    # Separate detection, alert and progress tables, so the demo's stay as they are.
    names = demo_config.storage.tables
    tables = names.model_copy(
        update={
            key: getattr(names, key) + "_allowlisted" for key in ("smb_detections", "smb_alerts", "smb_score_state")
        }
    )
    exclusions = ExclusionsConfig(
        processes=(ProcessExclusion(value="system", owner="secops", reason="kernel client", expires=date(2099, 1, 1)),),
        hosts=(HostExclusion(value="old-host", owner="it", reason="retired", expires=date(2020, 1, 1)),),
    )
    config = demo_config.model_copy(
        update={"storage": demo_config.storage.model_copy(update={"tables": tables}), "exclusions": exclusions}
    )
    score = demo.pipeline.score

    result = run_score(spark, config, score.window_from, score.window_to)

    assert result.detections > 0
    assert result.detections_excluded == result.detections
    assert result.alerts_opened == 0
    assert result.expired_exclusions == ("host old-host (owner it, until 2020-01-01: retired)",)
    run = Tables(config).detector_runs.read(spark).orderBy("started_at", ascending=False).first()
    assert run is not None
    assert run["detections_excluded"] == result.detections
    assert run["expired_exclusions"] == result.expired_exclusions[0]


def test_explain_needs_input_versions(spark: SparkSession, config: Config) -> None:
    write_tables(spark, config)
    with pytest.raises(NotExplainableError, match="has no input_versions"):
        explain_alert(spark, config, "a1")


@pytest.fixture(scope="module")
def replay(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    trace = real_data(
        "evtx-attack-samples-smb", "events", "Discovery__discovery_sysmon_3_Invoke_UserHunter_SourceMachine.evtx.jsonl"
    )
    config = load_config("local", [f"storage.local_root={tmp_path_factory.mktemp('replay')}"])
    return run_replay(spark, config, [str(trace)], "sysmon", workstations=20)


def test_replay_alerts_on_alice_only(replay: DemoResult) -> None:
    assert [alert["host_id"] for alert in replay.alerts] == ["alice.insecurebank.local"]


def test_replay_lists_new_destinations(replay: DemoResult) -> None:
    alert = replay.alerts[0]
    # 10.59.4.11 (DC1) is alice's domain controller, which its generated history uses for SYSVOL.
    assert sorted(d["destination_ip"] for d in alert["new_destinations"]) == [
        "10.59.4.12",
        "10.59.4.21",
        "10.59.4.22",
        "10.59.4.23",
        "10.59.4.24",
        "10.59.4.25",
    ]
    assert alert["variation"] == "Highly rare SMB activity to multiple hosts"


def test_replay_generated_fleet_quiet(replay: DemoResult, tmp_path: Path) -> None:
    hosts = json.loads((replay.data_dir / "hosts.json").read_text(encoding="utf-8"))
    generated = {host["host_id"] for host in hosts} - {"alice.insecurebank.local"}
    assert generated
    assert not generated & {alert["host_id"] for alert in replay.alerts}


def test_hourly_scoring_matches_backfill(spark: SparkSession, demo: DemoResult, demo_config: Config) -> None:
    # Scoring the period in two runs, split right after an alert's first
    # detection, must update that alert rather than add a row.
    split = demo_config.model_copy(
        update={
            "storage": demo_config.storage.model_copy(
                update={
                    "tables": demo_config.storage.tables.model_copy(
                        update={"smb_alerts": "smb_alerts_split", "smb_detections": "smb_detections_split"}
                    )
                }
            )
        }
    )
    score = demo.pipeline.score
    middle = demo.alerts[0]["first_detection_window_end"]
    first = run_score(spark, split, score.window_from, middle)
    second = run_score(spark, split, middle, score.window_to)
    ignored = {"detected_at", "updated_at"}

    def rows(config: Config) -> list[dict]:
        found = Tables(config).smb_alerts.read(spark).orderBy("alert_id").collect()
        return [{k: v for k, v in row.asDict(recursive=True).items() if k not in ignored} for row in found]

    assert first.alerts_opened + second.alerts_opened == len(demo.alerts)
    assert second.alerts_updated >= 1
    assert len(rows(split)) == len(demo.alerts)
    assert rows(split) == rows(demo_config)


def test_short_capture_explains_missing_history(spark: SparkSession, config: Config) -> None:
    capture = str(FIXTURES / "mordor" / "purplesharp_ad_playbook_I_smb_2020-10-22042947.jsonl")
    with pytest.raises(NothingToFitError, match="A short capture needs history"):
        run_pipeline(spark, config, [capture], "auto")
    with pytest.raises(NoUsableEventsError, match="36 duplicates of events already ingested"):
        run_pipeline(spark, config, [capture], "auto")
