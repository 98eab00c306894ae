"""`har emulate`: a device emulator on a pseudo-terminal (for `har record --port` / `har run`)."""

from __future__ import annotations

import sys
import time

import click

from har.cli.cmd_record import stop_on_signals


@click.command("emulate")
@click.argument("recording", required=False, type=str)
@click.option("--simulate", is_flag=True, help="Stream the activity simulator instead of a RECORDING.")
@click.option("--activity", "activities", multiple=True,
              help="Simulated activity; repeat to cycle through several [default: walking].")
@click.option("--segment", "segment_s", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Seconds per simulated activity before moving to the next --activity.")
@click.option("--subject", type=int, default=0, show_default=True, help="Simulated subject number (gait, posture).")
@click.option("--rate", "rate_hz", type=click.FloatRange(0, 20000, min_open=True), default=50.0, show_default=True,
              help="Sample rate (Hz, at most 20000); a RECORDING is resampled to it.")
@click.option("--range", "range_g", type=click.FloatRange(0, 32, min_open=True), default=8.0, show_default=True,
              help="Announced full-scale range (g); values are clipped to it.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds [default: until Ctrl-C / SIGTERM].")
@click.option("--loop", is_flag=True, help="Replay RECORDING forever [default: stop at its end].")
@click.option("--seed", type=int, default=None, help="Random seed for the simulator and faults [default: fresh].")
@click.option("--drop-every", type=click.IntRange(0), default=0, show_default=True,
              help="Fault: skip every Nth sample (seq still advances; 0 = off).")
@click.option("--garbage-every", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Fault: a burst of random bytes every S seconds (0 = off).")
@click.option("--reset-after", type=click.FloatRange(0), default=None,
              help="Fault: reset the device once after S seconds (seq restarts) [default: never].")
@click.option("--stall-after", type=click.FloatRange(0), default=None,
              help="Fault: freeze for --stall seconds once after S seconds [default: never].")
@click.option("--delay", "delay_s", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Seconds to wait after printing the port before streaming (time to open it).")
@click.option("--linger", "linger_s", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Seconds to keep the port open after streaming ends (so a reader can drain it).")
@click.option("--stall", "stall_s", type=click.FloatRange(0), default=3.0, show_default=True,
              help="Length of the --stall-after freeze (s).")
@click.option("--force", is_flag=True,
              help="Stream a RECORDING that fails the plausibility checks (units, timestamps) as it is.")
def emulate_cmd(
    recording: str | None, simulate: bool, activities: tuple[str, ...], segment_s: float, subject: int,
    rate_hz: float, range_g: float, duration: float | None, loop: bool, seed: int | None, drop_every: int,
    garbage_every: float, reset_after: float | None, stall_after: float | None, delay_s: float, linger_s: float,
    stall_s: float, force: bool = False,
) -> None:
    """Emulate a har device on a pseudo-terminal, streaming wire protocol v1.

    Prints the pty path alone on the first line of stdout; progress and the current true
    activity go to stderr. Record it with `har record --port <path> ...`.
    """
    from har.wire.emulator import Emulator, describe

    if recording is not None:  # units and timestamps are checked before the pty is opened
        from har.recording.checks import load_checked

        load_checked(recording, force=force, warn=lambda m: click.echo(f"Warning: {m}", err=True))
    emu = Emulator(
        recording=recording, simulate=simulate, activities=activities or ("walking",), segment_s=segment_s,
        subject=subject, rate_hz=rate_hz, range_g=range_g, loop=loop, seed=seed, drop_every=drop_every,
        garbage_every=garbage_every, reset_after=reset_after, stall_after=stall_after, stall_s=stall_s,
    )
    state = {"activity": "", "ticks": 0}

    def tick(e: Emulator) -> None:
        state["ticks"] += 1
        if e.activity != state["activity"] or state["ticks"] % 5 == 0:
            state["activity"] = e.activity
            click.echo(f"emulator: {describe(e)}", err=True)

    with emu:
        click.echo(emu.port)
        sys.stdout.flush()
        click.echo(f"emulating {rate_hz:g} Hz on {emu.port} (Ctrl-C to stop)", err=True)
        with stop_on_signals(emu.stop):
            if not emu.wait(delay_s):
                emu.run(duration=duration, on_tick=tick)
        click.echo(f"emulator stopped: {describe(emu)}", err=True)
        if linger_s:
            time.sleep(linger_s)


COMMANDS = [emulate_cmd]
