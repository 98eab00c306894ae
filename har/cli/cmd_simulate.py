"""`har simulate`: write synthetic demo recordings (har's activity simulator, not real people)."""

from __future__ import annotations

import click


@click.command("simulate")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Directory to write sim01.csv + sim01.json, ... into (created if missing).",
)
@click.option(
    "--subjects",
    default=8,
    show_default=True,
    type=int,
    metavar="N",
    help="Number of simulated subjects (one recording each, named sim01, sim02, ...).",
)
@click.option(
    "--seconds",
    default=40.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="Seconds of each activity per subject (all six activities, random order).",
)
@click.option(
    "--rate", "rate_hz", default=50.0, show_default=True, type=float, metavar="HZ", help="Sample rate in Hz (10-1000)."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    metavar="N",
    help="Random seed; the same seed and options give byte-identical files.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing simNN.csv/.json files in --out.")
def simulate(out_dir: str, subjects: int, seconds: float, rate_hz: float, seed: int, overwrite: bool) -> None:
    """Write SYNTHETIC accelerometer recordings made by har's activity simulator.

    Activities: walking, running, stairs, sitting, standing, lying. Samples are in g (gravity
    included, wrist placement, quantised to 1 milli-g, within +-4 g), in the har recording format
    (CSV + JSON sidecar). The project's demo data is regenerated with:

    \b
        har simulate --out data/sim --subjects 8 --seconds 40 --rate 50 --seed 0 --overwrite
    """
    from har.recording.simulate import generate_dataset

    paths = generate_dataset(
        out_dir, subjects=subjects, seconds_per_activity=seconds, rate_hz=rate_hz, seed=seed, overwrite=overwrite
    )
    for p in paths:
        click.echo(str(p))
    click.echo(f"Wrote {len(paths)} synthetic recording(s) to {out_dir}")


COMMANDS = [simulate]
