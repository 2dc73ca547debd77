"""Run configs drive the CLI: a command's run options are the fields of its library's config dataclass.

``with_config_options(ConfigClass)`` gives a typer command one option per field that carries
``clipsuite.core.run_config.cli`` metadata (flag, help, default and type from the field) and hands the
command the values as one dict; ``build_config`` then completes them from a stored run on ``--resume``
(flags typed again must agree, ``ConfigClass.ADJUSTABLE`` ones may change) and builds the config, whose
``__post_init__`` checks it before torch is imported. What is stored with the run is exactly that config.
A field whose text is not its value (``--languages en,fr``) names its ``parse``: typed as text, parsed here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from clipsuite.core.run_config import absolute_paths, as_text, cli_fields, parse_typed

C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])
VALUES = "values"  # the command's parameter that receives the config's values


def config_parameters(config_class: type) -> list[inspect.Parameter]:
    """One keyword parameter per CLI field, annotated the way typer reads options and arguments."""
    hints = typing.get_type_hints(config_class)
    params = []
    for f, meta in cli_fields(config_class):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = inspect.Parameter.empty
        flags = meta.flags or (f"--{f.name.replace('_', '-')}",)
        kind, text = hints[f.name], escape(meta.help)  # plain text: rich would take "[path, label]" for a tag
        if meta.parse is not None:  # typed as text; None (not typed) leaves the field's default
            shown = False if default is inspect.Parameter.empty or default is None else as_text(default)
            info = (typer.Argument(help=text, show_default=shown, metavar=f.name.upper()) if meta.argument
                    else typer.Option(*flags, help=text, show_default=shown))
            kind, default = str | None, None
        else:
            info = (typer.Argument(help=text, show_default=False, metavar=f.name.upper()) if meta.argument
                    else typer.Option(*flags, help=text))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[kind, info]))
    return params


def with_config_options(config_class: type) -> Callable[[F], F]:
    """Decorate a command ``def cmd(ctx, values: dict, <its own options>)``: typer sees its own options
    plus the config's fields; the command gets the fields' values in ``values``."""
    fields = {f.name for f, _ in cli_fields(config_class)}

    def decorate(func: F) -> F:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != VALUES]
        clash = fields & {p.name for p in own}
        if clash:
            raise TypeError(f"{func.__name__}: {', '.join(sorted(clash))} both an own option and a config field")

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in list(kwargs) if name in fields}
            return func(*args, **{VALUES: values}, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                  and p.name != "ctx" else p for p in own]
        ctx_first = [p for p in params if p.name == "ctx"] + [p for p in params if p.name != "ctx"]
        signature = inspect.Signature([*ctx_first, *config_parameters(config_class)])
        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        del command.__wrapped__  # typer reads this signature, not the function's own
        return typing.cast(F, command)

    return decorate


def build_config(ctx: typer.Context, config_class: type[C], values: dict[str, Any],
                 resume_from: Path | None = None) -> C:
    """The run's config: ``values`` with paths made absolute, completed from the run stored in
    ``resume_from`` (``--resume``), then checked by the config itself (one ``InputError`` line)."""
    from clipsuite.cli.resume import remembered
    from clipsuite.core.train.run_options import stored_options

    as_text_fields = {f.name for f, meta in cli_fields(config_class) if meta.parse is not None}
    # not typed: the field's default. Known before parsing, as a parse may give None (``--stretch none``)
    untyped = {name for name in as_text_fields if values.get(name) is None}
    values = absolute_paths(config_class, parse_typed(config_class, values))
    if resume_from is not None:
        values = remembered(ctx, resume_from, values, adjustable=getattr(config_class, "ADJUSTABLE", ()))
        untyped -= set(stored_options(resume_from) or {})  # a stored None is the run's value, not a default
    known = {f.name for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    return config_class(**{k: v for k, v in values.items() if k in known and k not in untyped})
