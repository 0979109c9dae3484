"""Our send reference in a provider's per-message callback URL, for channels whose receipts echo nothing of ours."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl, quote

from connectors._items import NormalizedItem, ReceiptItem

__all__ = ["QUERY_HEADER", "QUERY_RECORD_HEADER", "REFERENCE_PARAM", "query_of", "signed_url", "url_with_reference",
           "with_callback_reference"]

REFERENCE_PARAM: Final = "sb_ref"
# The receiver hands a webhook's raw query string to the driver's verify_webhook under this name (set from the
# request itself, whatever a client sent) and keeps it on the raw record under QUERY_RECORD_HEADER.
QUERY_HEADER: Final = "x-switchboard-query"
QUERY_RECORD_HEADER: Final = "query"


def url_with_reference(url: str, reference: str) -> str:
    """`url` with `sb_ref=<reference>` added to its query (a send's per-message callback URL)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{REFERENCE_PARAM}={quote(reference, safe='')}"


def query_of(headers: Mapping[str, str]) -> str | None:
    """The raw query string the receiver passed along; None when the receiver passed none (older callers)."""
    return headers.get(QUERY_HEADER)


def signed_url(configured: str, query: str | None) -> str:
    """The URL the provider requested: the configured one's scheme, host and path with the request's own query.

    Without a query from the receiver it is the configured URL as it stands."""
    if query is None:
        return configured
    base = configured.split("?", 1)[0]
    return f"{base}?{query}" if query else base


def with_callback_reference(items: list[NormalizedItem], query: str) -> list[NormalizedItem]:
    """Receipts without a reference of ours take the one in the callback URL's query, if it has one."""
    reference = dict(parse_qsl(query, keep_blank_values=True)).get(REFERENCE_PARAM)
    if not reference:
        return items
    return [dataclasses.replace(item, message_id=reference)
            if isinstance(item, ReceiptItem) and item.message_id is None else item for item in items]
