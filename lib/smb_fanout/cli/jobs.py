"""Commands that run one job each: ingest, stats, fit and score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smb_fanout import render
from smb_fanout.cli.app import (
    EXIT_FAILED,
    TIME_FORMAT,
    Options,
    app,
    check_format,
    current_champion,
    enforce_alert_budget,
    finish,
    parse_time,
    spark_session,
)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Input files, folders or globs.")],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Input format: canonical, sysmon, windows_security, windows, zeek, cortex_xdr, ocsf or auto "
            "(default: ingest.default_format). See docs/inputs.md.",
        ),
    ] = None,
) -> None:
    """Read raw files into network_events; rows that cannot be used go to quarantined_events."""
    from smb_fanout.ingest.job import run_ingest

    options: Options = ctx.obj
    config = options.config()
    check_format(input_format)
    result = run_ingest(spark_session(config), config, paths, input_format)
    finish(
        options,
        render.to_jsonable(result)
        | {
            "rows_read": result.rows_read,
            "rows_written": result.rows_written,
            "rows_quarantined": result.rows_quarantined,
            "duplicates_removed": result.duplicates_removed,
        },
        f"ingest: {result.rows_read} rows read from {len(result.files)} files: {result.rows_written} written, "
        f"{result.rows_quarantined} quarantined {dict(sorted(result.quarantine_reasons.items()))}, "
        f"{result.duplicates_removed} duplicates removed"
        + "".join(
            f"\n  {counts.source_file} ({counts.source_format}): {counts.rows_read} read, {counts.rows_written} "
            f"written, {counts.rows_quarantined} quarantined, {counts.duplicates_removed} duplicates"
            for counts in result.files
        ),
    )
    for item in result.unreadable_files:
        render.error_console.print(f"[red]error:[/red] skipped unreadable input {item.message()}")
    if result.unreadable_files:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def stats(
    ctx: typer.Context,
    until: Annotated[
        str | None,
        typer.Option(help=f"Aggregate hours before this time (default: through the last event's hour). {TIME_FORMAT}"),
    ] = None,
) -> None:
    """Build hourly SMB contacts, the destination profile and host windows from new events."""
    from smb_fanout.stats.job import run_stats

    options: Options = ctx.obj
    config = options.config()
    end = parse_time(until)
    result = run_stats(spark_session(config), config, end)
    finish(
        options,
        render.to_jsonable(result),
        f"stats: hours {result.batch_start} to {result.batch_end}: {result.hourly_rows} hourly contact rows, "
        f"{result.windows} host windows",
    )


@app.command()
def fit(
    ctx: typer.Context,
    training_end: Annotated[
        str | None,
        typer.Option(help=f"End of the training period (default: the stats job's progress). {TIME_FORMAT}"),
    ] = None,
    alert_budget: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Maximum expected alerts per day for the whole fleet, measured on the training period. "
            "A fit above it exits with code 1 and the alias moves back to the previous version.",
        ),
    ] = None,
    candidate: Annotated[
        bool,
        typer.Option(
            "--candidate",
            help="Register the fitted version without moving the alias; `smb-fanout promote VERSION` moves it later. "
            "Combine with --set detector.KEY=VALUE to try other parameters.",
        ),
    ] = False,
) -> None:
    """Fit thresholds on the training period, log an MLflow run and move the champion alias to it."""
    from smb_fanout.fit.job import run_fit

    options: Options = ctx.obj
    config = options.config()
    end = parse_time(training_end)
    previous = current_champion(config) if alert_budget is not None and not candidate else None
    result = run_fit(spark_session(config), config, end, candidate=candidate)
    if alert_budget is not None and result.expected_alerts_per_day > alert_budget and not candidate:
        enforce_alert_budget(config, result, alert_budget, previous)
    placement = "a candidate (the alias did not move)" if candidate else f"@{config.mlflow.alias}"
    finish(
        options,
        render.to_jsonable(result),
        f"fit: {result.hosts} hosts, training {result.training_start} to {result.training_end}, fleet floor "
        f"{result.fleet_floor:g}, highly rare tail {result.fleet_tail_threshold:g}, "
        f"{result.expected_alerts_per_day:.2f} expected alerts per day; model {result.model.name} "
        f"version {result.model.version} is {placement}",
    )


@app.command()
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Registered model version to move the alias to.")],
) -> None:
    """Move the champion alias to a registered model version, for example a candidate fit."""
    from smb_fanout.registry import ModelNotFoundError, model_version, set_alias

    options: Options = ctx.obj
    config = options.config()
    previous = current_champion(config)
    try:
        target = model_version(config, version)
    except ModelNotFoundError as err:
        render.error_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_FAILED) from err
    set_alias(config, target.version)
    before = f"version {previous.version}" if previous is not None else "no version"
    finish(
        options,
        {"model": target.name, "version": target.version, "run_id": target.run_id, "previous": before},
        f"promote: {target.name} @{config.mlflow.alias} moved from {before} to version {target.version}",
    )


@app.command()
def score(
    ctx: typer.Context,
    window_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            help=f"Score windows ending after this time (default: one slide before --to). {TIME_FORMAT}",
        ),
    ] = None,
    window_to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help=f"Score windows ending at or before this time (default: the stats job's progress). {TIME_FORMAT}",
        ),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option(
            help="Score with the model version that has this alias (a challenger) into smb_detections_shadow "
            "and smb_alerts_shadow, with a progress of its own; the production tables are not touched.",
        ),
    ] = None,
) -> None:
    """Score host windows with the champion model and write deduplicated alerts."""
    from smb_fanout.score.job import run_score, shadow_config

    options: Options = ctx.obj
    config = options.config()
    lower, upper = parse_time(window_from), parse_time(window_to)
    if shadow is not None:
        config = shadow_config(config, shadow)
    result = run_score(spark_session(config), config, lower, upper, job="score" if shadow is None else "score_shadow")
    scope = (
        f"windows ending in ({result.window_from}, {result.window_to}]"
        if result.window_to is not None
        else f"{result.windows_scored} new or changed windows"
    )
    finish(
        options,
        render.to_jsonable(result),
        f"score: {scope}: {result.detections} detections ({result.detections_excluded} matched an allowlist entry), "
        f"{result.alerts_opened} alerts opened, {result.alerts_updated} updated (model version {result.model.version})"
        + (f" into {config.storage.tables.smb_alerts}" if shadow is not None else "")
        + "".join(f"\nexpired allowlist entry, no longer applied: {entry}" for entry in result.expired_exclusions),
    )


@app.command()
def maintain(
    ctx: typer.Context,
    vacuum: Annotated[
        bool, typer.Option(help="Also VACUUM files older than operations.vacuum_retention_hours.")
    ] = True,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Run a full VACUUM that lists each table's folder (sets operations.vacuum_mode=full); "
            "run it weekly to delete files left by killed writers.",
        ),
    ] = False,
    table: Annotated[
        list[str] | None,
        typer.Option(help="Maintain only this table, for example smb_alerts; repeat for several. Default: all."),
    ] = None,
) -> None:
    """Compact and cluster every table (OPTIMIZE), then VACUUM; run it apart from the hourly jobs."""
    from smb_fanout.maintain import run_maintain
    from smb_fanout.tables import TABLE_SCHEMAS

    unknown = sorted(set(table or []) - set(TABLE_SCHEMAS))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: use one of {', '.join(TABLE_SCHEMAS)}", param_hint="--table")
    options: Options = ctx.obj
    config = options.config()
    if full:
        config = config.model_copy(update={"operations": config.operations.model_copy(update={"vacuum_mode": "full"})})
    results = run_maintain(spark_session(config), config, vacuum, table or None)
    finish(
        options,
        {"tables": render.to_jsonable(results)},
        "maintain: "
        + ", ".join(f"{result.table} {result.files_before} -> {result.files_after} files" for result in results),
    )


@app.command()
def backtest(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Registered model version to replay, for example a candidate.")],
    window_from: Annotated[
        str | None,
        typer.Option(
            "--from", help=f"Replay windows ending after this time (default: 14 days before --to). {TIME_FORMAT}"
        ),
    ] = None,
    window_to: Annotated[
        str | None,
        typer.Option(
            "--to", help=f"Replay windows ending at or before this time (default: the stats progress). {TIME_FORMAT}"
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="labels.json or scenarios.json of a generated fleet, for recall on its attacks."),
    ] = None,
) -> None:
    """Replay stored windows through a model version and log alerts per day and recall to its MLflow run.

    Nothing is written to the detection or alert tables, and the alias does not move.
    """
    from smb_fanout.backtest import TOP_HOSTS, log_backtest, run_backtest, to_payload
    from smb_fanout.registry import ModelNotFoundError

    options: Options = ctx.obj
    config = options.config()
    try:
        result = run_backtest(
            spark_session(config), config, model, parse_time(window_from), parse_time(window_to), labels
        )
    except ModelNotFoundError as err:
        render.error_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_FAILED) from err
    log_backtest(config, result)
    recall = "" if result.recall is None else f", recall {result.recall:.2f} on {result.attacks} labelled attacks"
    finish(
        options,
        to_payload(result),
        f"backtest of {result.model.name} version {result.model.version} on windows ending in "
        f"({result.window_from}, {result.window_to}]: {result.alerts} alerts from {result.detections} detections, "
        f"{result.alerts_per_1000_host_days:.2f} per 1,000 host-days, the {TOP_HOSTS} noisiest hosts raised "
        f"{result.top_hosts_share:.0%}{recall}; logged to MLflow run {result.model.run_id}",
    )
