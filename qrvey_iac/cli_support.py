"""What the command modules share: the error boundary, the environment options and opening a
workspace. cli.py (the composition root) and cli_tools.py both import it; neither imports the
other's helpers."""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from qrvey_iac.core.errors import InputError, QrveyIacError
from qrvey_iac.core.secrets import mask_text
from qrvey_iac.wiring import Workspace

KNOWN_SECRETS: set[str] = set()     # every secret this process has read: masked in errors too


class MaskingFilter(logging.Filter):
    """Masks every secret this process has read in a log line, as the Error: line is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, frozenset(KNOWN_SECRETS))
        if masked != message:
            record.msg, record.args = masked, None
        return True


USAGE_EXIT_CODE = 1     # click's is 2, which qrvey-iac keeps for "changes present" and "drift present"


class Commands(click.Group):
    """A command group whose usage errors (an unknown command or option, a bad option value,
    a missing argument, no command at all) exit 1 like every other error: CI reads exit 2 as
    "changes present" (``plan --detailed-exitcode``) or "drift present" (``drift``) only.

    The group parses its own options in ``make_context`` and its sub-commands' (nested groups
    included) in ``invoke``: a usage error raised in either leaves here with exit code 1, and
    click reports it as usual (usage line, hint, ``Error: ...``)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with usage_errors_exit_1():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with usage_errors_exit_1():
            return super().invoke(ctx)


@contextmanager
def usage_errors_exit_1() -> Iterator[None]:
    try:
        yield
    except click.UsageError as exc:
        exc.exit_code = USAGE_EXIT_CODE
        raise


def reports_errors(fn):
    """The single error boundary: ``Error: ...`` on stderr, exit code, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            raise           # the reader of stdout went away (| head): click ends quietly, exit code 1
        except InputError as exc:
            _debug_trace(kwargs)
            for problem in exc.problems:
                click.echo(f"Error: {problem}", err=True)
            noun = "problem" if len(exc.problems) == 1 else "problems"
            click.echo(f"{len(exc.problems)} {noun} found; nothing was changed.", err=True)
            sys.exit(exc.exit_code)
        except QrveyIacError as exc:
            _fail(kwargs, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(kwargs, "interrupted; the state holds everything that was done", 130)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
            _fail(kwargs, f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)", 1)

    return wrapper


def _debug_trace(kwargs: dict) -> None:
    if kwargs.get("debug"):    # an exception's message may quote a secret, as the Error: line would
        click.echo(mask_text(traceback.format_exc(), frozenset(KNOWN_SECRETS)), err=True, nl=False)


def _fail(kwargs: dict, message: str, code: int) -> None:
    _debug_trace(kwargs)
    message = mask_text(message, frozenset(KNOWN_SECRETS))
    click.echo("Error: " + message.replace("\n", "\n  ").rstrip(), err=True)
    sys.exit(code)


def environment_options(fn):
    options = [
        click.option("--env", "env", metavar="NAME", help="Environment from the config (default: defaultEnvironment)."),
        click.option("--config", default="qrvey-iac.yaml", show_default=True, metavar="FILE",
                     help="Project config with the environments."),
        click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
                     help="Set a manifest variable (repeatable); wins over --var-file and the config."),
        click.option("--var-file", "var_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
                     help="YAML mapping of variables (repeatable)."),
        click.option("--debug", is_flag=True, help="Show tracebacks and HTTP debug logs."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def open_workspace(kwargs: dict[str, Any]) -> Workspace:
    from qrvey_iac.adapters.variables import given_variables

    KNOWN_SECRETS.clear()            # a new command (tests run many in one process)
    if kwargs.get("debug"):
        shown = logging.StreamHandler(sys.stderr)
        shown.addFilter(MaskingFilter())    # every library's lines, not only the ones the client redacts
        logging.basicConfig(level=logging.DEBUG, handlers=[shown],
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")

    variables, given = given_variables(kwargs.get("var_files", ()), kwargs.get("variables", ()))
    # the workspace adds the manifests' ${env:X} values as it reads them: the Error: line and the
    # --debug traceback mask them too
    return Workspace.open(kwargs["config"], kwargs.get("env"), variables, notify=_note, known_secrets=KNOWN_SECRETS,
                          given=given)


def _note(message: str) -> None:
    click.echo(f"note: {mask_text(message, frozenset(KNOWN_SECRETS))}", err=True)
