"""The Databricks Asset Bundle, checked without the Databricks CLI.

`databricks-bundles` parses each job and dashboard into its typed model, which
rejects unknown keys and wrong types. A small JSON schema written here checks
the top level, the variables and the targets. Every task's command line is
parsed by the same click command the wheel's console script runs, and its
`--set` overrides are loaded as configuration.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
import typer
import yaml
from databricks.bundles.dashboards import Dashboard
from databricks.bundles.jobs import Job

from smb_fanout.cli import app
from smb_fanout.cli.app import split_global_options
from smb_fanout.config import load_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"\$\{([a-z_]+(?:\.[A-Za-z_]+)+)\}")
# Values of the workspace references that the CLI fills in at deploy time.
WORKSPACE = {"workspace.current_user.short_name": "alice", "workspace.current_user.userName": "alice@example.com"}
PRINCIPAL = {
    "type": "object",
    "properties": {
        "level": {"enum": ["CAN_VIEW", "CAN_RUN", "CAN_MANAGE", "IS_OWNER"]},
        "user_name": {"type": "string"},
        "group_name": {"type": "string"},
        "service_principal_name": {"type": "string"},
    },
    "required": ["level"],
    "additionalProperties": False,
    "oneOf": [{"required": ["user_name"]}, {"required": ["group_name"]}, {"required": ["service_principal_name"]}],
}

# Top level, variables and targets as the bundle reference documents them.
BUNDLE_SCHEMA = {
    "type": "object",
    "required": ["bundle", "include", "artifacts", "variables", "targets", "resources"],
    "additionalProperties": False,
    "properties": {
        "bundle": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[\p{L}\p{N}_.-]+$"}},
        },
        "include": {"type": "array", "items": {"type": "string"}},
        "artifacts": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["type", "build", "path"],
                "additionalProperties": False,
                "properties": {"type": {"const": "whl"}, "build": {"type": "string"}, "path": {"type": "string"}},
            },
        },
        "variables": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["description", "default"],
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string", "minLength": 20},
                    "default": {"type": ["string", "integer", "number", "boolean"]},
                },
            },
        },
        "targets": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "mode": {"enum": ["development", "production"]},
                    "default": {"type": "boolean"},
                    "workspace": {"type": "object"},
                    "variables": {"type": "object"},
                    "run_as": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"user_name": {"type": "string"}, "service_principal_name": {"type": "string"}},
                    },
                    "permissions": {"type": "array", "items": PRINCIPAL},
                },
            },
        },
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"jobs": {"type": "object"}, "dashboards": {"type": "object"}},
        },
    },
}


def load_bundle() -> dict[str, Any]:
    """Read databricks.yml and merge the resources of its `include` files into it."""
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text(encoding="utf-8"))
    bundle.setdefault("resources", {})
    for pattern in bundle["include"]:
        for path in sorted(ROOT.glob(pattern)):
            included = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert set(included) == {"resources"}, f"{path} may only define resources"
            for kind, items in included["resources"].items():
                duplicated = set(items) & set(bundle["resources"].get(kind, {}))
                assert not duplicated, f"{path} redefines {kind} {duplicated}"
                bundle["resources"].setdefault(kind, {}).update(items)
    return bundle


BUNDLE = load_bundle()
JOBS = BUNDLE["resources"]["jobs"]
TASKS = [(job_key, task) for job_key, job in JOBS.items() for task in job["tasks"]]


def resolve(value: str, target: str) -> str:
    """Replace ${var.*}, ${bundle.*} and ${workspace.*} references as the CLI does for `target`."""
    values = {f"var.{name}": str(spec["default"]) for name, spec in BUNDLE["variables"].items()}
    values.update({f"var.{name}": str(v) for name, v in BUNDLE["targets"][target].get("variables", {}).items()})
    values.update({"bundle.target": target, "bundle.name": BUNDLE["bundle"]["name"], **WORKSPACE})
    for _ in range(3):
        value = REFERENCE.sub(lambda match: values[match.group(1)], value)
    assert "${" not in value, f"unresolved reference in {value}"
    return value


def pattern_with_regex(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # The bundle schema uses Unicode classes such as \p{L}, which `re` does not know.
    if isinstance(instance, str) and not regex.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


RegexValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern_with_regex})


def test_bundle_matches_schema() -> None:
    RegexValidator(BUNDLE_SCHEMA).validate(BUNDLE)


def test_schema_rejects_unknown_key() -> None:
    broken = {**BUNDLE, "targets": {**BUNDLE["targets"], "qa": {"mode": "staging"}}}
    with pytest.raises(jsonschema.ValidationError, match="staging"):
        RegexValidator(BUNDLE_SCHEMA).validate(broken)


def test_schema_pattern_uses_unicode_classes() -> None:
    RegexValidator(BUNDLE_SCHEMA).validate({**BUNDLE, "bundle": {"name": "détecteur-smb"}})
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        RegexValidator(BUNDLE_SCHEMA).validate({**BUNDLE, "bundle": {"name": "smb fanout"}})


@pytest.mark.skipif(
    "SMB_FANOUT_BUNDLE_SCHEMA" not in os.environ,
    reason="set SMB_FANOUT_BUNDLE_SCHEMA to the file that `databricks bundle schema` writes",
)
def test_bundle_matches_cli_schema() -> None:
    import json

    schema = json.loads(Path(os.environ["SMB_FANOUT_BUNDLE_SCHEMA"]).read_text(encoding="utf-8"))
    RegexValidator(schema).validate(BUNDLE)


@pytest.mark.parametrize("job_key", sorted(JOBS))
def test_job_parses_as_typed_model(job_key: str) -> None:
    job = Job.from_dict(JOBS[job_key])
    assert job.max_concurrent_runs == 1
    assert job.schedule is not None
    assert job.schedule.timezone_id == "UTC"
    assert isinstance(job.timeout_seconds, int)
    assert job.timeout_seconds > 0
    assert job.as_dict()["email_notifications"] == {"on_failure": ["${var.failure_email}"]}


def test_typed_model_rejects_unknown_key() -> None:
    job = dict(JOBS["smb_fanout_hourly"])
    job["max_concurent_runs"] = 1
    with pytest.raises(ValueError, match="max_concurent_runs"):
        Job.from_dict(job)


@pytest.mark.parametrize(("job_key", "task"), TASKS, ids=[f"{job}.{task['task_key']}" for job, task in TASKS])
def test_task_retries_and_timeout(job_key: str, task: dict[str, Any]) -> None:
    assert task["max_retries"] >= 1
    assert 0 < task["timeout_seconds"] <= JOBS[job_key]["timeout_seconds"]
    assert task["libraries"] == [{"whl": "../dist/*.whl"}]
    assert task["python_wheel_task"]["package_name"] == "smb_fanout"


def test_hourly_chain_and_schedules() -> None:
    hourly = {task["task_key"]: task for task in JOBS["smb_fanout_hourly"]["tasks"]}
    assert list(hourly) == ["ingest", "stats", "score"]
    assert hourly["stats"]["depends_on"] == [{"task_key": "ingest"}]
    assert hourly["score"]["depends_on"] == [{"task_key": "stats"}]
    assert JOBS["smb_fanout_hourly"]["schedule"]["quartz_cron_expression"] == "0 5 * * * ?"
    assert JOBS["smb_fanout_daily"]["schedule"]["quartz_cron_expression"] == "0 30 2 * * ?"
    daily = [task["task_key"] for task in JOBS["smb_fanout_daily"]["tasks"]]
    assert daily == ["maintain", "fit", "views"]
    assert JOBS["smb_fanout_weekly"]["schedule"]["quartz_cron_expression"] == "0 30 4 ? * SUN"
    weekly = {task["task_key"]: task for task in JOBS["smb_fanout_weekly"]["tasks"]}
    assert list(weekly) == ["evaluate", "maintain"]
    assert weekly["maintain"]["python_wheel_task"]["parameters"][-2:] == ["maintain", "--full"]


def test_weekly_evaluation_stays_out_of_production() -> None:
    """The evaluation replaces the tables of its schema, so it must never use the production schema or model."""
    [evaluate] = [task for task in JOBS["smb_fanout_weekly"]["tasks"] if task["task_key"] == "evaluate"]
    parameters = evaluate["python_wheel_task"]["parameters"]
    assert "storage.schema=${var.schema}_evaluation" in parameters
    assert "mlflow.model_name=${var.catalog}.${var.schema}_evaluation.${var.model_name}" in parameters
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in JOBS["smb_fanout_weekly"]["job_clusters"]}
    assert clusters[evaluate["job_cluster_key"]]["num_workers"] == 0


def test_every_variable_described_and_used() -> None:
    files = [ROOT / "databricks.yml", *ROOT.glob("resources/*.yml")]
    text = "\n".join(path.read_text(encoding="utf-8") for path in files)
    used = {match.split(".", 1)[1] for match in REFERENCE.findall(text) if match.startswith("var.")}
    declared = set(BUNDLE["variables"])
    assert used <= declared, f"undeclared variables: {used - declared}"
    assert declared <= used, f"variables never used: {declared - used}"
    for name, spec in BUNDLE["variables"].items():
        assert spec["description"].strip().endswith("."), f"variable {name}: description is not a sentence"


def test_targets_dev_and_prod() -> None:
    dev, prod = BUNDLE["targets"]["dev"], BUNDLE["targets"]["prod"]
    assert dev["mode"] == "development"
    assert dev["default"] is True
    assert resolve("${var.schema}", "dev") == "smb_fanout_alice"
    assert prod["mode"] == "production"
    assert prod["run_as"] == {"service_principal_name": "${var.service_principal}"}
    assert {p["level"] for p in prod["permissions"]} == {"CAN_MANAGE", "CAN_VIEW"}
    assert prod["workspace"]["root_path"].startswith("/Workspace/Shared/")


def test_dashboard_resource() -> None:
    (_key, spec), *others = BUNDLE["resources"]["dashboards"].items()
    assert others == []
    dashboard = Dashboard.from_dict(spec).as_dict()
    assert dashboard["dataset_catalog"] == "${var.catalog}"
    assert dashboard["dataset_schema"] == "${var.schema}"
    assert (ROOT / "resources" / spec["file_path"]).resolve() == ROOT / "dashboards" / "smb_fanout.lvdash.json"


@pytest.fixture(scope="module")
def wheel_entry_points(tmp_path_factory: pytest.TempPathFactory) -> configparser.ConfigParser:
    """Build the wheel as the bundle's artifact does, from a copy of the sources, and read its entry points."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("smb_fanout-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "smb_fanout/report/page.html" in names
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points).decode())
    return parser


@pytest.mark.parametrize(("job_key", "task"), TASKS, ids=[f"{job}.{task['task_key']}" for job, task in TASKS])
@pytest.mark.parametrize("target", ["dev", "prod"])
def test_task_command_line_parses(
    job_key: str, task: dict[str, Any], target: str, wheel_entry_points: configparser.ConfigParser
) -> None:
    """The wheel has the task's entry point, and the entry point accepts the task's parameters."""
    wheel_task = task["python_wheel_task"]
    assert wheel_entry_points["console_scripts"][wheel_task["entry_point"]] == "smb_fanout.cli:main"
    argv = [resolve(str(value), target) for value in wheel_task["parameters"]]
    global_args, job_args = split_global_options(argv)
    group = typer.main.get_command(app)
    context = group.make_context("smb-fanout", [*global_args, *job_args])
    command_name = job_args[0]
    assert command_name == task["task_key"]
    _, command, rest = group.resolve_command(context, job_args)  # type: ignore[attr-defined]
    assert command is not None
    command.make_context(command_name, rest, parent=context)

    overrides = [global_args[i + 1] for i, arg in enumerate(global_args) if arg == "--set"]
    environment = global_args[global_args.index("--env") + 1]
    config = load_config(environment, overrides)
    assert config.environment == target
    assert config.storage.use_paths is False
    assert config.storage.catalog == resolve("${var.catalog}", target)
    assert config.mlflow.model_name == f"{config.storage.catalog}.{config.storage.schema_name}.smb_fanout_thresholds"
    assert config.mlflow.alias == "champion"
    assert config.mlflow.registry_uri == "databricks-uc"
