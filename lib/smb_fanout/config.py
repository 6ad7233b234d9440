"""Typed configuration loaded from `conf/base.yml`, an environment file and overrides."""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from smb_fanout.identifiers import validate_identifier

DEFAULT_CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
ENVIRONMENTS = ("local", "dev", "prod")


class ConfigError(ValueError):
    """Raised when a configuration file or override is invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableNames(_Frozen):
    network_events: str = "network_events"
    quarantined_events: str = "quarantined_events"
    ingest_runs: str = "ingest_runs"
    host_addresses: str = "host_addresses"
    smb_contacts_hourly: str = "smb_contacts_hourly"
    smb_profile: str = "smb_profile"
    smb_host_windows: str = "smb_host_windows"
    smb_stats_state: str = "smb_stats_state"
    smb_thresholds: str = "smb_thresholds"
    smb_process_rarity: str = "smb_process_rarity"
    smb_destination_popularity: str = "smb_destination_popularity"
    host_roles: str = "host_roles"
    smb_detections: str = "smb_detections"
    smb_alerts: str = "smb_alerts"
    smb_score_state: str = "smb_score_state"
    detector_runs: str = "detector_runs"

    @field_validator("*")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_identifier(value)


class StorageConfig(_Frozen):
    catalog: str = "spark_catalog"
    schema_name: str = Field("smb_fanout", alias="schema")
    local_root: str = ".smb-fanout"
    # True: Delta tables are folders under local_root/tables; False: catalog tables.
    use_paths: bool = True
    tables: TableNames = TableNames()

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("catalog", "schema_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_identifier(value)


class DetectorConfig(_Frozen):
    smb_ports: tuple[int, ...] = (445, 139)
    internal_cidrs: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
    window_hours: int = Field(5, ge=1, le=24)
    slide_hours: int = Field(1, ge=1, le=24)
    training_days: int = Field(30, ge=1, le=365)
    activation_days: int = Field(14, ge=0, le=365)
    dedup_hours: int = Field(24, ge=1, le=24 * 14)
    min_new_destinations: int = Field(5, ge=1)
    p_abnormal: float = Field(0.001, gt=0, lt=0.5)
    p_highly_rare: float = Field(0.0001, gt=0, lt=0.5)
    common_destination_fraction: float = Field(0.2, gt=0, le=1)
    fleet_change_min_hosts: int = Field(10, ge=2)
    fanout_min_destinations: int = Field(2, ge=1)
    medium_multiplier: float = Field(3.0, gt=1)
    medium_failure_ratio: float = Field(0.5, ge=0, le=1)
    rare_process_host_fraction: float = Field(0.01, ge=0, le=1)
    os_smb_client_processes: tuple[str, ...] = ("system",)

    @field_validator("smb_ports")
    @classmethod
    def _check_ports(cls, ports: tuple[int, ...]) -> tuple[int, ...]:
        for port in ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is outside 1-65535")
        return ports

    @field_validator("internal_cidrs")
    @classmethod
    def _check_cidrs(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as err:
                raise ValueError(f"invalid CIDR {cidr!r}: {err}") from err
        return cidrs

    @field_validator("os_smb_client_processes")
    @classmethod
    def _lower(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.lower() for name in names)


class NamingRule(_Frozen):
    pattern: str
    group: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"invalid regular expression {pattern!r}: {err}") from err
        return pattern


class PeersConfig(_Frozen):
    naming_rules: tuple[NamingRule, ...] = ()
    subnet_prefix_v4: int = Field(24, ge=8, le=32)
    subnet_prefix_v6: int = Field(64, ge=16, le=128)
    min_hosts: int = Field(5, ge=2)


class Exclusion(_Frozen):
    value: str
    owner: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date


class HostExclusion(Exclusion):
    pass


class ProcessExclusion(Exclusion):
    """An actor process by path, by file name, or by image SHA-256 (64 hex digits)."""


class DestinationExclusion(Exclusion):
    @field_validator("value")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as err:
            raise ValueError(f"invalid CIDR {value!r}: {err}") from err
        return value


class ExclusionsConfig(_Frozen):
    hosts: tuple[HostExclusion, ...] = ()
    processes: tuple[ProcessExclusion, ...] = ()
    destination_cidrs: tuple[DestinationExclusion, ...] = ()


class IngestConfig(_Frozen):
    default_format: str = "auto"
    max_raw_chars: int = Field(8192, ge=256)


class MlflowConfig(_Frozen):
    tracking_uri: str = ""
    registry_uri: str = ""
    experiment: str = "smb-fanout"
    model_name: str = "smb_fanout_thresholds"
    alias: str = "champion"


class OperationsConfig(_Frozen):
    # Events up to this many hours older than the stats progress are aggregated
    # and rescored; older ones are counted in detector_runs and skipped.
    allowed_lateness_hours: int = Field(48, ge=0, le=24 * 30)
    # A score run that opens more alerts than this is marked degraded.
    alert_budget_per_run: int = Field(50, ge=0)
    # A stats run that finds no new events is marked degraded.
    degrade_on_empty_input: bool = True
    # VACUUM keeps files that older table versions need for this many hours.
    vacuum_retention_hours: int = Field(168, ge=0)
    # `lite` deletes the files the Delta log removed. `full` also lists the
    # table's folder for files no commit refers to, such as those of a killed writer.
    vacuum_mode: Literal["lite", "full"] = "lite"


class SparkConfig(_Frozen):
    master: str = "local[2]"
    # Folder of the Delta jars that `make jars` copies from Maven Central.
    jars_dir: str = ".smb-fanout/jars"
    shuffle_partitions: int = Field(4, ge=1)
    driver_memory: str = "2g"
    # Largest total result one action may bring to the driver; a collect of
    # fleet-sized data fails instead of exhausting driver memory.
    max_result_size: str = "1g"
    # Memory of each executor when `master` is a cluster (spark://...).
    executor_memory: str = "1g"


class Config(_Frozen):
    environment: str = "local"
    storage: StorageConfig = StorageConfig()
    detector: DetectorConfig = DetectorConfig()
    peers: PeersConfig = PeersConfig()
    exclusions: ExclusionsConfig = ExclusionsConfig()
    ingest: IngestConfig = IngestConfig()
    mlflow: MlflowConfig = MlflowConfig()
    spark: SparkConfig = SparkConfig()
    operations: OperationsConfig = OperationsConfig()

    @property
    def local_root(self) -> Path:
        return Path(self.storage.local_root).resolve()


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"configuration file not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML in {path}: {err}") from err
    except ValueError as err:
        # YAML reads 2027-02-30 as a date and fails while building it.
        raise ConfigError(f"invalid date in {path}: {err}. Write dates as YYYY-MM-DD") from err
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must contain a mapping at the top level")
    return content


def parse_override(text: str) -> dict[str, Any]:
    """Turn `section.key=value` into a nested mapping; the value is parsed as YAML."""
    dotted, sep, raw_value = text.partition("=")
    if not sep or not dotted.strip():
        raise ConfigError(f"invalid override {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid value in override {text!r}: {err}") from err
    except ValueError as err:
        raise ConfigError(f"invalid date in override {text!r}: {err}. Write dates as YYYY-MM-DD") from err
    nested: dict[str, Any] = {}
    cursor = nested
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _describe_error(error: Any) -> str:
    """Name the key of one validation error, then the rejected value or the missing field."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{key} is required: add it"
    return f"{key}={error.get('input')!r}: {error['msg']}"


def is_sha256(value: str) -> bool:
    """Tell whether `value` is a SHA-256 digest written as 64 hex digits."""
    return re.fullmatch(r"[0-9a-fA-F]{64}", value) is not None


def load_config(
    environment: str = "local",
    overrides: list[str] | tuple[str, ...] = (),
    conf_dir: Path | None = None,
) -> Config:
    """Load base.yml, then `<environment>.yml`, then each `section.key=value` override.

    Raises:
        ConfigError: a file is missing or malformed, or a value is invalid; the
            message names the key and the rejected value.
    """
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {environment!r}: use one of {', '.join(ENVIRONMENTS)}")
    folder = conf_dir or DEFAULT_CONF_DIR
    merged = _read_yaml(folder / "base.yml")
    merged = _deep_merge(merged, _read_yaml(folder / f"{environment}.yml"))
    for override in overrides:
        merged = _deep_merge(merged, parse_override(override))
    merged["environment"] = environment
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        problems = "; ".join(_describe_error(e) for e in err.errors())
        raise ConfigError(f"invalid configuration ({folder}, environment {environment}): {problems}") from err
