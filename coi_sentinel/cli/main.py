"""The ``coi-sentinel`` command: a click group whose subcommands live in their own modules.

Errors are translated here, once: a :class:`SentinelError` becomes one line on stderr and exit
code 1 (``--debug`` shows the traceback); usage errors exit 2 (click's convention). Logging is
configured here and nowhere else.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__
from ..errors import SentinelError
from ..heap import collect_young_less, keep_freed_memory

#: (module under coi_sentinel.cli, command name) - imported only when the command runs, so
#: `--help` and the commands that need no kernel never import bcc or pylxd
COMMANDS: dict[str, tuple[str, str]] = {
    "watch": ("watch", "watch"),
    "daemon": ("daemon", "daemon"),
    "doctor": ("doctor", "doctor"),
    "record": ("record", "record"),
    "status": ("status", "status"),
    "replay": ("replay", "replay"),
    "run": ("run", "run"),
    "list": ("sessions", "list_"),
    "attach": ("sessions", "attach"),
    "kill": ("sessions", "kill"),
    "shutdown": ("sessions", "shutdown"),
    "clean": ("sessions", "clean"),
    "image": ("image", "image"),
    "audit": ("audit", "audit"),
    "rules": ("rules", "rules"),
    "net": ("net", "net"),
    "resume-session": ("resume", "resume_session"),
    "unfreeze": ("resume", "resume_session"),
    "report": ("report", "report"),
    "top": ("top", "top"),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "COI_SENTINEL",
                    "max_content_width": 100}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module = importlib.import_module(f"coi_sentinel.cli.{spec[0]}")
        return getattr(module, spec[1])


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="coi-sentinel")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Watch what AI coding agents do, at the kernel level, and stop them when they go wrong.

    \b
    Examples:
      sudo coi-sentinel doctor                  # what this host can monitor
      sudo coi-sentinel watch --json --duration 5
      sudo coi-sentinel watch --container my-agent
    """
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    keep_freed_memory()         # the event path's batches reuse the heap (coi_sentinel/heap.py)
    collect_young_less()        # and allocate short-lived objects with fewer collections
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="coi-sentinel", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as err:
        # one line, like every other error: what is wrong, and where the help is
        where = err.ctx.command_path if err.ctx is not None else "coi-sentinel"
        text = " ".join(err.format_message().split())
        click.echo(f"{where}: usage error: {text} (see `{where} --help`)", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except SentinelError as err:
        if debug:
            raise
        msg = f"coi-sentinel: error: {err}"
        if err.hint:
            msg += f" ({err.hint})"
        click.echo(msg, err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    # standalone_mode=False: ctx.exit(n) inside a command comes back as the return value
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
