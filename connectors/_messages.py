"""The outbound message a driver sends: a recipient, our message id and one content value."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from connectors._privacy import PHONE, MaskedRepr

__all__ = [
    "ButtonKind",
    "Buttons",
    "Content",
    "CurrencyParam",
    "DateTimeParam",
    "ListMenu",
    "ListRow",
    "ListSection",
    "Media",
    "MediaKind",
    "OutboundMessage",
    "ReplyButton",
    "Template",
    "TemplateButton",
    "TemplateParam",
    "Text",
    "TextParam",
]


class MediaKind(StrEnum):
    """Kinds of media message."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"


@dataclass(frozen=True, slots=True)
class Text:
    """Free-form text; on WhatsApp only inside the 24-hour customer-service window."""

    body: str
    preview_url: bool = False


@dataclass(frozen=True, slots=True)
class Media:
    """Media by public link or by an id the provider gave for an upload: exactly one of the two."""

    kind: MediaKind
    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        if (self.link is None) == (self.media_id is None):
            raise ValueError("Media needs exactly one of link or media_id")


@dataclass(frozen=True, slots=True)
class TextParam:
    """A text template parameter; `name` set means a NAMED template, unset a positional one."""

    text: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CurrencyParam:
    """A currency template parameter; amount_1000 is the amount times 1000."""

    fallback: str
    code: str
    amount_1000: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DateTimeParam:
    """A date-time template parameter, shown as its fallback text."""

    fallback: str
    name: str | None = None


TemplateParam = TextParam | CurrencyParam | DateTimeParam


class ButtonKind(StrEnum):
    """Template button parameters: a quick-reply payload, a dynamic URL suffix, a copy code."""

    QUICK_REPLY = "quick_reply"
    URL = "url"
    COPY_CODE = "copy_code"


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """The parameter of the template button at `index` (0-based, as the template defines its buttons)."""

    kind: ButtonKind
    index: int
    value: str


@dataclass(frozen=True, slots=True)
class Template:
    """An approved template by name and exact language code, with its parameters."""

    name: str
    language: str
    body: tuple[TemplateParam, ...] = ()
    header: TextParam | Media | None = None
    buttons: tuple[TemplateButton, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyButton:
    """One reply button: the id comes back in the user's reply, the title is what they see."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Buttons:
    """An interactive message with reply buttons."""

    body: str
    buttons: tuple[ReplyButton, ...]
    header: str | None = None
    footer: str | None = None


@dataclass(frozen=True, slots=True)
class ListRow:
    """One selectable row of a list message."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListSection:
    """A titled group of rows."""

    title: str
    rows: tuple[ListRow, ...]


@dataclass(frozen=True, slots=True)
class ListMenu:
    """An interactive list: a button label that opens sections of rows."""

    body: str
    button: str
    sections: tuple[ListSection, ...]
    header: str | None = None
    footer: str | None = None


Content = Text | Media | Template | Buttons | ListMenu


@dataclass(frozen=True, slots=True, repr=False)
class OutboundMessage(MaskedRepr):
    """One message to send: our id, the sending account (WhatsApp: phone_number_id), the recipient, the content."""

    message_id: str
    sender: str
    recipient: str = field(metadata=PHONE)
    content: Content
    reply_to: str | None = None  # a provider message id to quote
