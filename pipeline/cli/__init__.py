"""The `counterpoint` command: parse options, call the library, map errors to exit codes.

Exit codes: 0 complete brief; 1 nothing usable (config, input, auth, every stage failed);
2 usage error; 3 brief written but incomplete; 130 interrupted (Ctrl-C or SIGTERM: what finished
is saved for --resume). Heavy modules are imported inside commands so
that `counterpoint --help` and `counterpoint runs` start fast.

One module per command family: common.py (printing, errors, shared option types), run.py,
records.py (runs, show, validate), doctor.py, batch.py, serve.py, export.py, eval.py. Each defines Click commands;
this module groups them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .batch import batch
from .common import EXIT_FAILED, EXIT_OK, apply_config
from .doctor import doctor
from .eval import eval_command
from .export import export
from .records import list_runs, show, validate
from .run import run
from .serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="counterpoint")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Answer an opinion piece: extract its claims, steelman and rebut each, write a debate brief.

    Defaults for model, base URL, concurrency, runs dir and more can be set in counterpoint.toml
    (working directory, then the user config dir); options and environment variables override it.
    """
    apply_config(ctx)


def console() -> None:
    """The `counterpoint` program: `main`, then exit without the interpreter's teardown.

    Once a command has finished and its output is flushed there is nothing left to clean up, yet
    unloading the ~900 modules a run imports (most of them the openai SDK's) takes 0.06-0.15 s.
    Library callers and tests use `main`, which exits normally.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # sys.exit("message") semantics
        print(code, file=sys.stderr)
        code = EXIT_FAILED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`counterpoint runs | head -1`): as the commands do
            code = code or EXIT_FAILED
    os._exit(code or EXIT_OK)


for _command in (run, batch, list_runs, show, validate, doctor, serve, export, eval_command):
    main.add_command(_command)
