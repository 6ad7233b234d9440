"""Commands that create the SQL views of the dashboard and write the local HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smb_fanout import render
from smb_fanout.cli.app import EXIT_FAILED, Options, app, spark_session


@app.command()
def views(ctx: typer.Context) -> None:
    """Create or replace the SQL views that the dashboard reads (alerts per day, top hosts, health)."""
    from smb_fanout.views import create_views

    options: Options = ctx.obj
    config = options.config()
    result = create_views(spark_session(config), config)
    if options.as_json:
        render.print_json(result)
        return
    render.console.print(f"views: created {', '.join(result.created)}")


@app.command()
def report(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(help="HTML file to write (default: report.html under storage.local_root)."),
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, max=366, help="Days of alerts in the charts over time, ending at the newest alert.")
    ] = 30,
    alert_id: Annotated[
        str | None,
        typer.Option(
            "--alert",
            help="Alert id, or a unique prefix, whose new destinations the timeline shows "
            "(default: the newest alert with the most new destinations).",
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report with plotly charts of the alerts and print its path."""
    from smb_fanout.report import AlertNotFoundError, load_report_data, write_report

    options: Options = ctx.obj
    config = options.config()
    spark = spark_session(config)
    with render.console.status("querying the alert, window and threshold tables"):
        try:
            data = load_report_data(spark, config, days=days, alert_id=alert_id)
        except AlertNotFoundError as err:
            render.error_console.print(f"[red]error:[/red] {err}; list the alerts with `smb-fanout alerts list`")
            raise typer.Exit(EXIT_FAILED) from err
    target = output or config.local_root / "report.html"
    path = write_report(
        data,
        f"the tables under {config.local_root}"
        if config.storage.use_paths
        else f"{config.storage.catalog}.{config.storage.schema_name}",
        target,
    )
    if options.as_json:
        render.print_json({"report": str(path), "alerts": data.summary["alerts"]})
    else:
        render.console.print(f"report: {path}")
