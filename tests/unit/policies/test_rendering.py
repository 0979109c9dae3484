"""Locale fallback, template parameter binding and sandboxed free text."""

from __future__ import annotations

import pytest

from streams.policies.rendering import (
    RenderError,
    TemplateParameters,
    bind_parameters,
    choose_locale,
    locale_chain,
    render_text,
)


def test_locale_falls_back_from_region_to_language_to_default() -> None:
    assert locale_chain("pt_BR", "en_US") == ["pt_BR", "pt", "en_US"]
    assert choose_locale("pt_BR", "en_US", ["pt", "en_US"]) == "pt"
    assert choose_locale("pt_BR", "en_US", ["en_US"]) == "en_US"
    with pytest.raises(RenderError, match="no version of the template"):
        choose_locale("pt_BR", "en_US", ["es"])


def test_named_and_positional_parameters_are_checked() -> None:
    assert bind_parameters(["name", "order"], {"order": "#1", "name": "Ada"}) == TemplateParameters(
        named=(("name", "Ada"), ("order", "#1")))
    assert bind_parameters(2, ["Ada", 1234]) == TemplateParameters(positional=("Ada", "1234"))
    with pytest.raises(RenderError, match="missing template parameter 'order'"):
        bind_parameters(["name", "order"], {"name": "Ada"})
    with pytest.raises(RenderError, match="unexpected template parameter 'x'"):
        bind_parameters(["name"], {"name": "Ada", "x": 1})
    with pytest.raises(RenderError, match="takes 2 positional parameters, got 1"):
        bind_parameters(2, ["Ada"])
    with pytest.raises(RenderError, match="not named ones"):
        bind_parameters(1, {"name": "Ada"})


def test_free_text_renders_with_variables() -> None:
    assert render_text("Hi {{ name }}, order {{ order.id }} shipped", {"name": "Ada", "order": {"id": 7}}) == (
        "Hi Ada, order 7 shipped")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi {{ nobody }}", "is undefined"),
        ("{{ ''.__class__.__mro__ }}", "is unsafe"),
        ("{{ name.__init__.__globals__ }}", "is unsafe"),
        ("   ", "empty message"),
        ("{{ 'x' * 5000 }}", "limit is 4096"),
    ],
)
def test_free_text_is_sandboxed_and_checked(source: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_text(source, {"name": "Ada"})
