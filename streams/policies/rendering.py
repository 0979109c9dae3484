"""Rendering decisions: locale fallback, template parameter checks, and free text in a Jinja2 sandbox."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

# WhatsApp's limit for a text body; longer free text is an error, never silently cut.
MAX_TEXT_LENGTH = 4096

_SANDBOX = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class RenderError(ValueError):
    """A message cannot be rendered: no locale, a missing or unexpected parameter, or a bad free text."""


@dataclass(frozen=True)
class TemplateParameters:
    """Parameters for a provider template: positional (a list) or named (a mapping), never mixed."""

    positional: tuple[str, ...] = ()
    named: tuple[tuple[str, str], ...] = ()


def locale_chain(requested: str, default: str) -> list[str]:
    """pt_BR, then pt, then the template's default: the order in which locales are tried."""
    chain = [requested]
    language = requested.split("_", 1)[0]
    if language != requested:
        chain.append(language)
    if default not in chain:
        chain.append(default)
    return chain


def choose_locale(requested: str, default: str, available: Iterable[str]) -> str:
    """The first locale of the chain that the template has an (approved) version in."""
    have = set(available)
    for locale in locale_chain(requested, default):
        if locale in have:
            return locale
    raise RenderError(f"no version of the template for {requested!r}, its language, or the default {default!r}")


def bind_parameters(expected: Sequence[str] | int, values: Mapping[str, Any] | Sequence[Any]) -> TemplateParameters:
    """Checks values against what the template version expects: names (NAMED) or a count (POSITIONAL)."""
    if isinstance(expected, int):
        return _bind_positional(expected, values)
    return _bind_named(expected, values)


def _bind_positional(count: int, values: Mapping[str, Any] | Sequence[Any]) -> TemplateParameters:
    if isinstance(values, Mapping):
        raise RenderError("this template takes positional parameters ({{1}}, {{2}}...), not named ones")
    if len(values) != count:
        raise RenderError(f"this template takes {count} positional parameters, got {len(values)}")
    return TemplateParameters(positional=tuple(str(v) for v in values))


def _bind_named(names: Sequence[str], values: Mapping[str, Any] | Sequence[Any]) -> TemplateParameters:
    if not isinstance(values, Mapping):
        raise RenderError(f"this template takes named parameters ({', '.join(names)}), not positional ones")
    missing = [name for name in names if name not in values]
    if missing:
        raise RenderError(f"missing template parameter {missing[0]!r}")
    unexpected = sorted(set(values) - set(names))
    if unexpected:
        raise RenderError(f"unexpected template parameter {unexpected[0]!r}")
    return TemplateParameters(named=tuple((name, str(values[name])) for name in names))


def render_text(source: str, variables: Mapping[str, Any]) -> str:
    """Free text through a sandboxed, immutable Jinja2: no attribute tricks, no side effects, undefined is an error."""
    try:
        text = _SANDBOX.from_string(source).render(**variables)
    except TemplateError as error:
        raise RenderError(f"free text does not render: {error}") from error
    if not text.strip():
        raise RenderError("free text renders to an empty message")
    if len(text) > MAX_TEXT_LENGTH:
        raise RenderError(f"free text is {len(text)} characters; the limit is {MAX_TEXT_LENGTH}")
    return text


def text_variables(source: str) -> frozenset[str]:
    """The names a text uses; RenderError if it is not valid template syntax (checked when the file is loaded)."""
    try:
        return frozenset(meta.find_undeclared_variables(_SANDBOX.parse(source)))
    except TemplateError as error:
        raise RenderError(f"does not parse: {error}") from error
