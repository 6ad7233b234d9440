"""Configuration loading, overrides and identifier validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from smb_fanout.config import ConfigError, load_config, parse_override
from smb_fanout.identifiers import qualified_name, validate_identifier
from smb_fanout.tables import Tables


def test_defaults_match_spec() -> None:
    detector = load_config("local").detector
    assert detector.smb_ports == (445, 139)
    assert detector.window_hours == 5
    assert detector.training_days == 30
    assert detector.activation_days == 14
    assert detector.dedup_hours == 24
    assert detector.min_new_destinations == 5
    assert detector.p_highly_rare == 0.0001
    assert detector.medium_multiplier == 3.0
    assert detector.internal_cidrs == ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def test_override_parses_yaml_value() -> None:
    config = load_config("local", ["detector.min_new_destinations=8", "detector.smb_ports=[445]"])
    assert config.detector.min_new_destinations == 8
    assert config.detector.smb_ports == (445,)


def test_environment_file_applies() -> None:
    prod = load_config("prod")
    assert prod.storage.use_paths is False
    assert prod.mlflow.registry_uri == "databricks-uc"


def test_bad_value_names_key() -> None:
    with pytest.raises(ConfigError, match=r"detector\.min_new_destinations=0"):
        load_config("local", ["detector.min_new_destinations=0"])


def test_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError, match=r"detector\.min_new_destination"):
        load_config("local", ["detector.min_new_destination=3"])


def test_bad_cidr_rejected() -> None:
    with pytest.raises(ConfigError, match=r"invalid CIDR '10\.0\.0\.1/8'"):
        load_config("local", ["detector.internal_cidrs=[10.0.0.1/8]"])


def test_impossible_date_rejected(tmp_path: Path) -> None:
    entry = "{value: ws-1, owner: secops, reason: scanner, expires: 2027-13-45}"
    with pytest.raises(
        ConfigError, match=r"invalid date in override .*month must be in 1\.\.12\. Write dates as YYYY-MM-DD"
    ):
        load_config("local", [f"exclusions.hosts=[{entry}]"])
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yml").write_text((Path(__file__).parents[1] / "conf" / "base.yml").read_text(encoding="utf-8"))
    (conf / "local.yml").write_text(
        "exclusions:\n  hosts: [{value: ws-1, owner: secops, reason: scanner, expires: 2027-02-30}]\n"
    )
    with pytest.raises(ConfigError, match=r"invalid date in .*local\.yml: day is out of range for month"):
        load_config("local", conf_dir=conf)


def test_missing_allowlist_field_named() -> None:
    with pytest.raises(ConfigError, match=r"exclusions\.processes\.0\.owner is required: add it$"):
        load_config("local", ["exclusions.processes=[{value: psexec.exe, reason: admin tool, expires: 2027-06-30}]"])


def test_unknown_environment_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown environment 'staging'"):
        load_config("staging")


def test_override_without_equals_rejected() -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        parse_override("detector.min_new_destinations")


def test_missing_conf_dir_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config("local", conf_dir=tmp_path)


@pytest.mark.parametrize("name", ["alerts; DROP TABLE x", "a.b", "`x`", "1table", "", "name with space", "x" * 256])
def test_unsafe_table_name_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid identifier"):
        load_config("local", [f"storage.tables.smb_alerts={name!r}"])


def test_identifier_quoting() -> None:
    assert validate_identifier("smb_alerts") == "smb_alerts"
    assert qualified_name("main", "smb_fanout", "smb_alerts") == "`main`.`smb_fanout`.`smb_alerts`"


def test_catalog_table_names_quoted() -> None:
    config = load_config("prod", ["storage.schema=secops"])
    assert Tables(config).smb_alerts.sql_name == "`main`.`secops`.`smb_alerts`"


def test_local_tables_under_root(tmp_path: Path) -> None:
    config = load_config("local", [f"storage.local_root={tmp_path}"])
    assert Tables(config).smb_alerts.path == tmp_path / "tables" / "smb_fanout" / "smb_alerts"
