"""Commands that run the whole pipeline: demo, run and replay."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from smb_fanout import render
from smb_fanout.cli.app import TIME_FORMAT, Options, app, check_format, parse_time, spark_session
from smb_fanout.config import Config

# Steps of the demo and the replay; `run` starts at ingest.
DEMO_STEPS = ("generate", "ingest", "stats", "fit", "score")


def _report(options: Options, config: Config, result: Any, title: str) -> None:
    """Print the alerts, the evaluation when there are labels, and where the outputs are."""
    pipeline = result.pipeline
    payload = {
        "ingest": {
            "rows_read": pipeline.ingest.rows_read,
            "rows_written": pipeline.ingest.rows_written,
            "rows_quarantined": pipeline.ingest.rows_quarantined,
            "duplicates_removed": pipeline.ingest.duplicates_removed,
            "quarantine_reasons": pipeline.ingest.quarantine_reasons,
        },
        "stats": pipeline.stats,
        "fit": pipeline.fit,
        "score": pipeline.score,
        "alerts": result.alerts,
        "evaluation": result.evaluation,
        "data_dir": str(result.data_dir),
        "tables_dir": str(result.tables_dir),
        "mlflow_tracking_uri": result.mlflow_uri,
    }
    if options.as_json:
        render.print_json(payload)
        return

    console = render.console
    ingest = pipeline.ingest
    console.print(
        f"ingested {ingest.rows_read} rows: {ingest.rows_written} events, {ingest.rows_quarantined} quarantined, "
        f"{ingest.duplicates_removed} duplicates"
    )
    console.print(
        f"fitted model {pipeline.fit.model.name} version {pipeline.fit.model.version} on "
        f"{pipeline.fit.training_start:%Y-%m-%d %H:%M} to {pipeline.fit.training_end:%Y-%m-%d %H:%M} UTC "
        f"({pipeline.fit.hosts} hosts; on the training period it would raise "
        f"{pipeline.fit.expected_alerts_per_day:.2f} alerts per day)"
    )

    console.print(
        render.alerts_table(
            result.alerts, title=f"{title}: {len(result.alerts)} alert{'' if len(result.alerts) == 1 else 's'}"
        )
    )
    if result.evaluation is not None:
        evaluation = result.evaluation
        console.print(
            f"injected attacks detected: {len(evaluation.detected_attacks)} of {evaluation.attacks}; "
            f"alerts on hosts without an injected attack: {len(evaluation.false_positive_hosts)}"
        )
        for missed in evaluation.missed_attacks:
            console.print(f"  [yellow]missed[/yellow] {missed}")
        for host in evaluation.false_positive_hosts:
            console.print(f"  [yellow]unexpected alert[/yellow] {host}")

    console.print(f"input events: {result.data_dir}")
    console.print(f"Delta tables: {result.tables_dir}")
    console.print(f"MLflow tracking store: {result.mlflow_uri}")


@app.command()
def demo(
    ctx: typer.Context,
    workstations: Annotated[int, typer.Option(help="Number of workstations in the generated fleet.")] = 60,
    days: Annotated[int, typer.Option(help="Days of generated history.")] = 35,
    attacks: Annotated[int, typer.Option(help="Number of injected SMB fan-out attacks in the last days.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same fleet.")] = 7,
) -> None:
    """Generate a fleet with injected attacks, run all four jobs and show the alerts.

    Tables, the MLflow store and the generated files go under storage.local_root
    (default .smb-fanout); earlier tables there are replaced.
    """
    from smb_fanout.demo import run_demo
    from smb_fanout.generator import FleetSpec

    options: Options = ctx.obj
    config = options.config()
    spec = FleetSpec(workstations=workstations, days=days, attacks=attacks, seed=seed)
    spark = spark_session(config)
    with render.step_progress(DEMO_STEPS) as on_step:
        result = run_demo(spark, config, spec, on_step)
    _report(options, config, result, "Demo fleet")
    if result.evaluation is not None and result.evaluation.missed_attacks:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    input_paths: Annotated[list[str], typer.Option("--input", help="Input file, folder or glob. Repeatable.")],
    input_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Input format: canonical, sysmon, windows_security, windows, zeek, cortex_xdr, ocsf or auto.",
        ),
    ] = "auto",
    score_from: Annotated[
        str | None,
        typer.Option(
            help=(
                "Score windows ending after this time; the model trains on the period before it "
                f"(default: one window before the end of the data). {TIME_FORMAT}"
            )
        ),
    ] = None,
    score_to: Annotated[
        str | None,
        typer.Option(help=f"Score windows ending at or before this time (default: the end of the data). {TIME_FORMAT}"),
    ] = None,
) -> None:
    """Run ingest, stats, fit and score on your own files and show the alerts."""
    from smb_fanout.demo import DemoResult, collect_alerts
    from smb_fanout.pipeline import run_pipeline
    from smb_fanout.registry import tracking_uris

    options: Options = ctx.obj
    config = options.config()
    check_format(input_format)
    lower, upper = parse_time(score_from), parse_time(score_to)
    spark = spark_session(config)
    with render.step_progress(DEMO_STEPS[1:]) as on_step:
        pipeline = run_pipeline(spark, config, input_paths, input_format, lower, upper, on_step)
    alerts = collect_alerts(spark, config)
    result = DemoResult(
        pipeline,
        alerts,
        None,
        config.local_root,
        config.local_root / "tables",
        tracking_uris(config)[0],
    )
    _report(options, config, result, "Alerts")


@app.command()
def replay(
    ctx: typer.Context,
    trace: Annotated[list[str], typer.Option(help="Real trace file or folder. Repeatable.")],
    input_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Format of the trace: canonical, sysmon, windows_security, zeek, cortex_xdr, ocsf or auto.",
        ),
    ] = "auto",
    workstations: Annotated[int, typer.Option(help="Generated workstations besides the trace's hosts.")] = 20,
    days: Annotated[int, typer.Option(help="Days of generated history before the trace.")] = 35,
) -> None:
    """Replay a real trace over generated history: its hosts get 30+ days of ordinary SMB first."""
    from smb_fanout.demo import run_replay

    options: Options = ctx.obj
    config = options.config()
    check_format(input_format)
    spark = spark_session(config)
    with render.step_progress(DEMO_STEPS) as on_step:
        result = run_replay(spark, config, trace, input_format, workstations=workstations, days=days, on_step=on_step)
    _report(options, config, result, "Replay")


@app.command()
def evaluate(
    ctx: typer.Context,
    workstations: Annotated[int, typer.Option(help="Workstations in the generated library fleet.")] = 500,
    days: Annotated[int, typer.Option(help="Days of generated history; the last third is scored.")] = 45,
    repeats: Annotated[int, typer.Option(help="Instances of each scenario class.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same library.")] = 11,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the results page (Markdown) to this file, for example docs/evaluation.md."),
    ] = None,
) -> None:
    """Run the labelled scenario library through the pipeline and measure recall and false alerts per class.

    Tables and the generated files go under storage.local_root, and earlier
    tables there are replaced: point it at a folder or schema of its own. The
    figures are logged as an MLflow run named `evaluate`.
    """
    from smb_fanout.evaluation import DEFAULT_LIBRARY, log_to_mlflow, render_page, run_evaluation

    options: Options = ctx.obj
    config = options.config()
    spec = dataclasses.replace(
        DEFAULT_LIBRARY,
        workstations=workstations,
        days=days,
        scenario_repeats=repeats,
        seed=seed,
        file_servers=max(DEFAULT_LIBRARY.file_servers, 3 + 4 * repeats),
    )
    spark = spark_session(config)
    started = time.monotonic()
    result = run_evaluation(spark, config, spec)
    minutes = (time.monotonic() - started) / 60
    run_id = log_to_mlflow(config, result)
    command = f"smb-fanout evaluate --workstations {workstations} --days {days} --repeats {repeats} --seed {seed}"
    machine = f" in {minutes:.1f} minutes with Spark master `{spark.sparkContext.master}`"
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_page(result, command, machine), encoding="utf-8")
    if options.as_json:
        render.print_json({"result": result, "mlflow_run_id": run_id, "page": str(output) if output else None})
    else:
        render.console.print(render.evaluation_table(result))
        render.console.print(
            f"precision {result.precision if result.precision is not None else 'n/a'}, "
            f"{result.false_alerts_per_1000_host_days:.2f} alerts not on an attack per 1,000 host-days "
            f"({result.unexpected_alerts_per_1000_host_days:.2f} beyond the documented Low outcomes); "
            f"MLflow run {run_id}"
        )
        if output is not None:
            render.console.print(f"results page: {output}")
    if not all(item.meets_expectation for item in result.classes):
        raise typer.Exit(1)
