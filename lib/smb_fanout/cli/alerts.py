"""Commands that read the alert table."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from pyspark.sql import functions as F

from smb_fanout import render
from smb_fanout.cli.app import EXIT_FAILED, Options, alerts_app, app, spark_session
from smb_fanout.pipeline import alerts_frame
from smb_fanout.tables import Tables


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Maximum number of alerts shown, newest first.")] = 50,
) -> None:
    """List alerts, newest first."""
    options: Options = ctx.obj
    config = options.config()
    rows = [row.asDict(recursive=True) for row in alerts_frame(spark_session(config), config).limit(limit).collect()]
    if options.as_json:
        render.print_json({"alerts": rows})
    else:
        render.console.print(render.alerts_table(rows, title=f"{len(rows)} alerts"))


@alerts_app.command("show")
def show_alert(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="Alert id, or a unique prefix of it.")],
) -> None:
    """Show every field of one alert."""
    options: Options = ctx.obj
    config = options.config()
    spark = spark_session(config)
    matches = Tables(config).smb_alerts.read(spark).where(F.col("alert_id").startswith(alert_id)).limit(2).collect()
    if len(matches) != 1:
        problem = "not found" if not matches else "ambiguous: give more characters"
        render.error_console.print(f"[red]error:[/red] alert id {alert_id!r} {problem}")
        raise typer.Exit(EXIT_FAILED)
    alert = matches[0].asDict(recursive=True)
    if options.as_json:
        render.print_json(alert)
    else:
        render.console.print(render.alert_detail(alert))


@app.command()
def explain(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="Alert id, or a unique prefix of it.")],
) -> None:
    """Re-derive an alert from the table versions it was made from and show the evidence.

    Exits with code 1 when the re-derived decision differs from the stored one.
    """
    from smb_fanout.explain import AlertNotFoundError, NotExplainableError, explain_alert

    options: Options = ctx.obj
    config = options.config()
    try:
        explanation = explain_alert(spark_session(config), config, alert_id)
    except (AlertNotFoundError, NotExplainableError) as err:
        render.error_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_FAILED) from err
    if options.as_json:
        render.print_json({**dataclasses.asdict(explanation), "reproduced": explanation.reproduced})
    else:
        for part in render.explanation(explanation):
            render.console.print(part)
    if not explanation.reproduced:
        raise typer.Exit(EXIT_FAILED)
