"""The rarity model, peer fallback, common destinations and allowlists, on small Spark frames."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import stats as scipy_stats

from smb_fanout import schemas
from smb_fanout.config import Config, load_config
from smb_fanout.fit.peers import assign_peer_groups
from smb_fanout.fit.rarity import MIN_RATE, group_priors, nb_quantile, nb_tail
from smb_fanout.fit.thresholds import FleetDistribution, host_statistics, priors, thresholds
from smb_fanout.registry import ModelVersion
from smb_fanout.score.detect import ModelTables, detect, expired_exclusions

TRAINING_END = datetime(2026, 11, 1)
SCORED_END = TRAINING_END + timedelta(hours=6)
MODEL = ModelVersion("smb_fanout_thresholds", "1", "run-1")
NB_CASES = [(0.3, 0.5), (2.0, 10000.0), (0.05, 2.0), (5.0, 1.0), (40.0, 3.0)]


def _nbinom(mean: float, size: float) -> Any:
    return scipy_stats.nbinom(size, size / (size + mean))


@pytest.mark.parametrize("tail", [1e-3, 1e-4])
def test_nb_quantile_matches_scipy(spark: SparkSession, tail: float) -> None:
    frame = spark.createDataFrame(NB_CASES, "mean double, size double")
    got = [row["q"] for row in frame.select(nb_quantile(F.col("mean"), F.col("size"), tail).alias("q")).collect()]
    assert got == [float(_nbinom(mean, size).ppf(1 - tail)) for mean, size in NB_CASES]


def test_nb_tail_matches_scipy_far_in_the_tail(spark: SparkSession) -> None:
    cases = [(mean, size, count) for mean, size in NB_CASES for count in (0, 3, 10, 40)]
    frame = spark.createDataFrame(cases, "mean double, size double, count int")
    got = frame.select(nb_tail(F.col("count"), F.col("mean"), F.col("size")).alias("p")).collect()
    for (mean, size, count), row in zip(cases, got, strict=True):
        expected = float(_nbinom(mean, size).sf(count - 1))
        assert row["p"] == pytest.approx(expected, rel=1e-6, abs=1e-300), (mean, size, count)


def _training_windows(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """Ten peers with a new destination in every tenth window, a host with constant 2, and a 3-day host."""
    rows: list[tuple[str, datetime, int]] = []
    for peer in range(10):
        for w in range(720):
            if w % 10 == peer % 10:
                rows.append((f"ws-{peer:02d}", TRAINING_END - timedelta(hours=w), 2 if w % 70 == 0 else 1))
    rows += [("flat", TRAINING_END - timedelta(hours=w), 2) for w in range(720)]
    windows = spark.createDataFrame(rows, "host_id string, window_end timestamp, new_destination_count long")
    observed = spark.createDataFrame(
        [(f"ws-{peer:02d}", 720) for peer in range(10)] + [("flat", 720), ("thin", 72)],
        "host_id string, windows_observed long",
    )
    return windows, observed


def _fit(spark: SparkSession, config: Config) -> DataFrame:
    windows, observed = _training_windows(spark)
    # The flat host is alone in its subnet, too few hosts for a group prior.
    group = F.when(F.col("host_id") == "flat", "subnet:10.0.2.0/24").otherwise("subnet:10.0.1.0/24")
    stats = (
        host_statistics(windows, observed, 0.999)
        .withColumn("peer_group", group)
        .withColumn("peer_rule", F.lit("subnet"))
    )
    counts = {row[0]: row[1] for row in windows.groupBy("new_destination_count").count().collect()}
    counts[0] = 12 * 720 - 72 * 9 - sum(counts.values())
    prior_rows = priors(stats, config.detector, config.peers.min_hosts)
    start = TRAINING_END - timedelta(days=30)
    return thresholds(stats, prior_rows, FleetDistribution(counts), config.detector, start, TRAINING_END)


@pytest.fixture(scope="module")
def fitted(spark: SparkSession) -> dict[str, Any]:
    config = load_config("local")
    return {row["host_id"]: row.asDict() for row in _fit(spark, config).collect()}


def test_thin_history_borrows_the_peer_baseline(fitted: dict[str, Any]) -> None:
    thin, peer = fitted["thin"], fitted["ws-00"]
    assert thin["prior_source"] == "peer"
    # Three quiet days pull the rate only part of the way from the peers' 0.1 towards 0.
    assert thin["prior_mean"] == pytest.approx(fitted["*peer:subnet:10.0.1.0/24"]["prior_mean"])
    assert 0.2 * peer["predictive_mean"] < thin["predictive_mean"] < peer["predictive_mean"]
    assert thin["threshold"] == 4.0
    assert thin["host_quantile"] <= 4.0


def test_zero_variance_host_keeps_margin(fitted: dict[str, Any]) -> None:
    flat = fitted["flat"]
    assert flat["predictive_mean"] == pytest.approx(2.0, rel=0.02)
    assert 4.0 < flat["threshold"] < 12.0


def test_group_and_fleet_rows_written(fitted: dict[str, Any]) -> None:
    group = fitted["*peer:subnet:10.0.1.0/24"]
    assert (group["baseline_source"], group["prior_hosts"], group["windows_observed"]) == ("peer", 11, 0)
    assert "*peer:subnet:10.0.2.0/24" not in fitted
    assert fitted["flat"]["prior_source"] == "fleet"
    assert (fitted["*"]["baseline_source"], fitted["*"]["prior_hosts"]) == ("fleet", 12)


def _destinations(count: int, prefix: str = "10.0.9.") -> list[dict[str, Any]]:
    return [
        {
            "destination_id": f"{prefix}{i}",
            "destination_ip": f"{prefix}{i}",
            "resolved": False,
            "first_time": SCORED_END - timedelta(hours=1),
            "attempts": 1,
            "failures": 0,
        }
        for i in range(1, count + 1)
    ]


def _window(host_id: str, destinations: list[dict[str, Any]], process: str = "System") -> dict[str, Any]:
    return {
        "host_id": host_id,
        "host_name": f"{host_id}.corp.local",
        "window_start": SCORED_END - timedelta(hours=5),
        "window_end": SCORED_END,
        "distinct_destinations": len(destinations),
        "new_destination_count": len(destinations),
        "new_destinations": destinations,
        "attempts": len(destinations),
        "failures": 0,
        "failure_ratio": 0.0,
        "new_attempts": len(destinations),
        "new_failures": 0,
        "actor_processes": [{"name": process, "path": f"C:\\Tools\\{process}", "count": 1, "sha256": None}],
        "causality_processes": [],
        "command_lines": [],
    }


def _detect(
    spark: SparkSession, config: Config, windows: list[dict[str, Any]], popular: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    frame = spark.createDataFrame(windows, schemas.struct_type(schemas.SMB_HOST_WINDOWS))
    hosts = spark.createDataFrame(
        [
            ("ws-00", TRAINING_END - timedelta(days=60), "subnet:10.0.1.0/24"),
            ("new-host", SCORED_END - timedelta(days=2), "subnet:10.0.1.0/24"),
            ("stranger", SCORED_END - timedelta(days=2), "subnet:10.7.7.0/24"),
        ],
        "host_id string, first_seen timestamp, peer_group string",
    )
    model = ModelTables(
        _fit(spark, config),
        spark.createDataFrame([("system", 1.0)], "process_name string, host_fraction double"),
        spark.createDataFrame([(d, 0.9) for d in popular], "destination_id string, host_fraction double"),
    )
    found = detect(frame, model, hosts, TRAINING_END - timedelta(days=60), config, MODEL)
    return {row["host_id"]: row.asDict() for row in found.collect()}


def test_host_without_row_uses_peers(spark: SparkSession) -> None:
    config = load_config("local")
    found = _detect(spark, config, [_window("new-host", _destinations(6)), _window("stranger", _destinations(20))])
    assert (found["new-host"]["baseline_source"], found["new-host"]["peer_group"]) == ("peer", "subnet:10.0.1.0/24")
    assert found["new-host"]["insufficient_history"] is True
    assert (found["stranger"]["baseline_source"], found["stranger"]["peer_group"]) == ("fleet", "fleet")
    assert found["new-host"]["threshold"] < found["stranger"]["threshold"] < 20
    # Highly rare by the fleet's tail; too little history to call it the host's first fan-out.
    assert found["new-host"]["variation_reason"] == "beyond the fleet's highly rare tail"


def test_common_destinations_are_not_new(spark: SparkSession) -> None:
    config = load_config("local")
    servers = _destinations(3, prefix="10.0.5.")
    found = _detect(
        spark,
        config,
        [_window("ws-00", _destinations(3) + servers)],
        popular=tuple(d["destination_id"] for d in servers),
    )
    assert found == {}
    found = _detect(spark, config, [_window("ws-00", _destinations(5) + servers)], popular=("10.0.5.1",))
    row = found["ws-00"]
    assert (row["new_destination_count"], row["common_destination_count"]) == (7, 1)
    assert "10.0.5.1" not in [d["destination_id"] for d in row["new_destinations"]]
    assert row["baseline_source"] == "host"
    assert row["tail_probability"] < config.detector.p_abnormal


def _with_exclusions(**lists: str) -> Config:
    return load_config("local", [f"exclusions.{key}={value}" for key, value in lists.items()])


def test_host_entries_active_and_expired(spark: SparkSession) -> None:
    active = "{value: ws-00, owner: secops, reason: vulnerability scanner, expires: 2026-12-31}"
    expired = "{value: new-host, owner: it, reason: imaging, expires: 2026-10-01}"
    config = _with_exclusions(hosts=f"[{active}, {expired}]")
    found = _detect(spark, config, [_window("ws-00", _destinations(8)), _window("new-host", _destinations(8))])
    assert found["ws-00"]["exclusion"] == "host ws-00 (owner secops, until 2026-12-31: vulnerability scanner)"
    assert found["new-host"]["exclusion"] is None
    assert expired_exclusions(config.exclusions, date(2026, 12, 5)) == [
        "host new-host (owner it, until 2026-10-01: imaging)"
    ]


def test_process_entry_needs_every_actor_process(spark: SparkSession) -> None:
    entry = "{value: 'c:\\tools\\deploy.exe', owner: it, reason: software push, expires: 2027-01-31}"
    config = _with_exclusions(processes=f"[{entry}]")
    mixed = _window("new-host", _destinations(8), process="deploy.exe")
    mixed["actor_processes"] = mixed["actor_processes"] + [{"name": "psexec.exe", "path": None, "count": 1}]
    found = _detect(spark, config, [_window("ws-00", _destinations(8), process="deploy.exe"), mixed])
    assert found["ws-00"]["exclusion"].startswith("process c:\\tools\\deploy.exe (owner it")
    assert found["new-host"]["exclusion"] is None


def test_process_entry_by_image_hash(spark: SparkSession) -> None:
    deploy_hash = "9f" * 32
    entry = f"{{value: '{deploy_hash.upper()}', owner: it, reason: signed deployment agent, expires: 2027-01-31}}"
    config = _with_exclusions(processes=f"[{entry}]")
    hashed = _window("ws-00", _destinations(8), process="deploy.exe")
    hashed["actor_processes"][0]["sha256"] = deploy_hash
    # Same name and path, but the source reported no hash: the entry cannot vouch for it.
    unhashed = _window("new-host", _destinations(8), process="deploy.exe")
    renamed = _window("stranger", _destinations(20), process="deploy.exe")
    renamed["actor_processes"][0]["sha256"] = "0e" * 32
    found = _detect(spark, config, [hashed, unhashed, renamed])
    assert found["ws-00"]["exclusion"] == (
        f"process {deploy_hash.upper()} (owner it, until 2027-01-31: signed deployment agent)"
    )
    assert found["new-host"]["exclusion"] is None
    assert found["stranger"]["exclusion"] is None


def test_destination_cidr_entry_removes_destinations_from_the_count(spark: SparkSession) -> None:
    entry = "{value: 10.0.9.0/29, owner: backup, reason: new VM hosts, expires: 2027-01-31}"
    config = _with_exclusions(destination_cidrs=f"[{entry}]")
    found = _detect(spark, config, [_window("ws-00", _destinations(9)), _window("new-host", _destinations(12))])
    assert "ws-00" not in found
    row = found["new-host"]
    assert (row["new_destination_count"], row["excluded_destination_count"]) == (5, 7)


def test_peer_group_precedence(spark: SparkSession) -> None:
    config = load_config("local", ["peers.naming_rules=[{pattern: '^srv-', group: servers}]"])
    hosts = spark.createDataFrame(
        [("h1", "srv-files"), ("h2", "srv-db"), ("h3", "ws-1"), ("h4", "ws-2"), ("h5", "lab-7")],
        "host_id string, host_name string",
    )
    roles = spark.createDataFrame([("h2", "database", "cmdb")], schemas.struct_type(schemas.HOST_ROLES))
    addresses = spark.createDataFrame(
        [
            ("h3", "ws-1", "10.1.2.77", date(2026, 11, 1), TRAINING_END, TRAINING_END),
            (
                "h3",
                "ws-1",
                "10.9.0.5",
                date(2026, 10, 1),
                TRAINING_END - timedelta(days=30),
                TRAINING_END - timedelta(days=29),
            ),
            ("h1", "srv-files", "fd00:1:2:3::9", date(2026, 11, 1), TRAINING_END, TRAINING_END),
            ("h5", "lab-7", "fd00:1:2:3::9", date(2026, 11, 1), TRAINING_END, TRAINING_END),
        ],
        schemas.struct_type(schemas.HOST_ADDRESSES),
    )
    rows = assign_peer_groups(hosts, roles, addresses, config.peers).collect()
    groups = {row["host_id"]: (row["peer_group"], row["peer_rule"]) for row in rows}
    assert groups == {
        "h1": ("name:servers", "name"),
        "h2": ("role:database", "role"),
        "h3": ("subnet:10.1.2.0/24", "subnet"),
        "h4": ("fleet", "fleet"),
        "h5": ("subnet:fd00:1:2:3::/64", "subnet"),
    }


def test_fleet_change_is_not_fan_out(spark: SparkSession) -> None:
    """Twelve hosts reaching the same five new print servers in one hour alert neither alone nor together."""
    config = load_config("local", ["detector.fleet_change_min_hosts=10"])
    printers = _destinations(5, prefix="10.0.6.")
    windows = [_window(f"ws-{i:02d}", printers + _destinations(1, prefix=f"10.0.7{i}.")) for i in range(12)]
    windows.append(_window("new-host", printers[:2] + _destinations(8)))
    found = _detect(spark, config, windows)
    assert set(found) == {"new-host"}
    row = found["new-host"]
    assert (row["new_destination_count"], row["fleet_change_destination_count"]) == (8, 2)


def test_group_prior_matches_moments(spark: SparkSession) -> None:
    """The prior from sums equals the method-of-moments formulas computed host by host."""
    hosts = [("g", 100, 30.0, 50.0), ("g", 400, 20.0, 30.0), ("g", 50, 40.0, 200.0), ("g", 200, 0.0, 0.0)]
    frame = spark.createDataFrame(
        hosts, "peer_group string, windows_observed long, new_sum double, new_sum_squares double"
    )
    fraction = 0.2
    row = group_priors(frame, fraction).first()
    assert row is not None
    mean = sum(h[2] for h in hosts) / sum(h[1] for h in hosts)
    spread = sum((s / n - mean) ** 2 - mean / (n * fraction) for _, n, s, _ in hosts) / len(hosts)
    variance = max(spread, mean * mean / 4, MIN_RATE)
    excess = sum(n * (q / n - (s / n) ** 2 - s / n) for _, n, s, q in hosts)
    squares = sum(n * (s / n) ** 2 for _, n, s, _ in hosts)
    assert row["prior_hosts"] == 4
    assert row["prior_shape"] == pytest.approx(mean * mean / variance)
    assert row["prior_rate"] == pytest.approx(mean / variance)
    assert row["nb_size_pooled"] == pytest.approx(squares / excess)
