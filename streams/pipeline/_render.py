"""Templating for the writer: a template with bound parameters and a chosen locale, or sandboxed free text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aggregates import Contact, Message
from streams.policies.rendering import RenderError, bind_parameters, choose_locale, render_text
from switchboard.config import PipelineConfig, TemplateRef

__all__ = ["RenderFailure", "Rendered", "content_summary", "render"]


class RenderFailure(Exception):
    """The message cannot be rendered for this channel; the writer falls back or suppresses with this text."""


@dataclass(frozen=True)
class Rendered:
    """What to send (a JSON-able content dict for the dispatcher) and a one-line summary for the event log."""

    content: dict[str, Any]
    summary: str
    locale: str | None


MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})


def render(config: PipelineConfig, template: str | None, message: Message, contact: Contact,
           window_open: bool, media: dict[str, Any] | None = None, as_text: bool = False) -> Rendered:
    """A template (with `media` as its header) when the message has one, or its text when the channel sends text
    only (`as_text`); else free text or media with a caption, only inside the customer-service window."""
    media = _checked_media(media)
    if template is not None and as_text:
        return _template_text(config, template, message, contact)
    if template is not None:
        rendered = _template(config, template, message, contact)
        return rendered if media is None else Rendered({**rendered.content, "header": media}, rendered.summary,
                                                       rendered.locale)
    if not window_open:
        raise RenderFailure("free text outside the 24-hour window: a template is required")
    try:
        body = render_text(message.body or "", dict(message.parameters))
    except RenderError as error:
        raise RenderFailure(f"free text: {error}") from error
    if media is not None:
        return Rendered({"type": "media", **media, "caption": body or None}, f"{media['kind']}: {body}", None)
    return Rendered({"type": "text", "body": body}, body, None)


def _checked_media(media: dict[str, Any] | None) -> dict[str, Any] | None:
    """`{"kind", "link" | "media_id", "filename"?}` from a request, or RenderFailure saying what is wrong."""
    if media is None:
        return None
    if media.get("kind") not in MEDIA_KINDS:
        raise RenderFailure(f"media kind must be one of {', '.join(sorted(MEDIA_KINDS))}, not {media.get('kind')!r}")
    if bool(media.get("link")) == bool(media.get("media_id")):
        raise RenderFailure("media needs exactly one of link and media_id")
    return {k: media[k] for k in ("kind", "link", "media_id", "filename") if media.get(k)}


def _template(config: PipelineConfig, name: str, message: Message, contact: Contact) -> Rendered:
    ref = _declared(config, name)
    requested = _requested_locale(ref, message, contact)
    try:
        locale = choose_locale(requested, ref.default_locale, ref.locales)
        bound = bind_parameters(ref.parameters, dict(message.parameters))
    except RenderError as error:
        raise RenderFailure(f"template {name!r}: {error}") from error
    content = {"type": "template", "name": name, "language": locale, "named": [list(p) for p in bound.named],
               "positional": list(bound.positional)}
    return Rendered(content, content_summary(content), locale)


def _template_text(config: PipelineConfig, name: str, message: Message, contact: Contact) -> Rendered:
    """The template's declared text in the best locale it has, its parameters filled in (sandboxed Jinja2)."""
    ref = _declared(config, name)
    texts = dict(ref.texts)
    if not texts:
        raise RenderFailure(f"template {name!r} has no text for a channel that sends text only (declare its `text`)")
    requested = _requested_locale(ref, message, contact)
    fallback = ref.default_locale if ref.default_locale in texts else next(iter(texts))
    try:
        locale = choose_locale(requested, fallback, texts)
        bound = bind_parameters(ref.parameters, dict(message.parameters))
        body = render_text(texts[locale], dict(bound.named))
    except RenderError as error:
        raise RenderFailure(f"template {name!r} as text: {error}") from error
    return Rendered({"type": "text", "body": body}, f"template {name}[{locale}] as text: {body}", locale)


def _requested_locale(ref: TemplateRef, message: Message, contact: Contact) -> str:
    """The message's locale, else the contact's language, else the template's default."""
    return message.locale or contact.preferences.language or ref.default_locale


def _declared(config: PipelineConfig, name: str) -> TemplateRef:
    ref = next((t for t in config.templates if t.name == name), None)
    if ref is None:
        raise RenderFailure(f"template {name!r} is not declared in the pipeline")
    return ref


def content_summary(content: dict[str, Any]) -> str:
    """A short human-readable form, e.g. `template order_shipped[de](order_id=42)`; never empty."""
    if content["type"] == "text":
        return str(content["body"])
    if content["type"] == "media":
        return f"{content['kind']}: {content.get('caption') or ''}"
    params = ", ".join(f"{k}={v}" for k, v in content["named"]) or ", ".join(content["positional"])
    return f"template {content['name']}[{content['language']}]({params})"
