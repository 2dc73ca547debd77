"""The umbrella ``clipsuite`` command.

Core commands live in their own modules (one idea each) and register themselves here; every installed
domain app is mounted as ``clipsuite <domain>`` through the ``clipsuite.apps`` entry-point group.
"""

from __future__ import annotations

import importlib

import typer

from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import err_console
from clipsuite.core.plugins import PluginError, Registry

APPS: Registry[typer.Typer] = Registry("clipsuite.apps", "app", lambda value: isinstance(value, typer.Typer),
                                       "a typer.Typer")


def _summary() -> str:
    """The one-line help, counting the domains installed here (entry-point metadata only, nothing imported)."""
    names = APPS.names()
    if not names:
        return "CLIP for specialists: the core commands (no domain package installed)."
    noun = "domain" if len(names) == 1 else "domains"
    return f"CLIP for specialists: one core, {len(names)} {noun} installed ({', '.join(names)})."


app = typer.Typer(name="clipsuite", help=_summary(), no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, cls=ClipsuiteGroup)

# Each module exposes register(app). Kept as names so a broken optional module cannot break the rest.
COMMAND_MODULES = (
    "clipsuite.cli.models_cmd",
    "clipsuite.cli.zeroshot_cmd",
    "clipsuite.cli.train_cmd",
    "clipsuite.cli.embed_cmd",
    "clipsuite.cli.index_cmd",
    "clipsuite.cli.adapt_cmd",
    "clipsuite.cli.demo",
    "clipsuite.cli.pretrain_cmd",
)


@app.callback(help=_summary())
def root() -> None:
    pass


def _register_core_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # not written yet / not shipped
                continue
            raise
        module.register(app)


def _mount_domain_apps() -> None:
    for name in APPS.names():
        try:
            sub = APPS.get(name)
        except PluginError as error:  # a broken domain install must not take the umbrella down
            err_console.print(f"[yellow]warning:[/] {error}", soft_wrap=True)
            continue
        app.add_typer(sub, name=name)


_register_core_commands()
_mount_domain_apps()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
