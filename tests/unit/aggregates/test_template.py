"""The Template aggregate: versions per locale, the parameters each expects, approval and category."""

from __future__ import annotations

import pytest

from aggregates import (
    ApprovalStatus,
    DomainError,
    ParameterFormat,
    Template,
    TemplateCategory,
    TemplateQuality,
    template_parameters,
)


def _template(parameter_format: ParameterFormat = ParameterFormat.POSITIONAL) -> Template:
    return Template.register(tenant_id="t1", name="order_update", category=TemplateCategory.UTILITY,
                             parameter_format=parameter_format)


def test_names_follow_the_provider_rules_and_ids_are_derived() -> None:
    assert _template().id == _template().id
    with pytest.raises(DomainError, match="lowercase"):
        Template.register(tenant_id="t1", name="Order Update", category=TemplateCategory.UTILITY)


def test_versions_are_numbered_per_locale() -> None:
    template = _template()
    first = template.publish_version("en_US", "Hi {{1}}, order {{2}} shipped")
    second = template.publish_version("en-US", "Hello {{1}}, order {{2}} is on its way", footer="Reply STOP")
    other = template.publish_version("pt_BR", "Olá {{1}}, pedido {{2}} enviado")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert template.expected_parameters("en_US", 2) == ("1", "2")
    assert first.status is ApprovalStatus.PENDING


@pytest.mark.parametrize(
    ("body", "parameter_format", "expected"),
    [
        ("{{2}} then {{1}} then {{2}}", ParameterFormat.POSITIONAL, ("1", "2")),
        ("Hi {{first_name}}, {{ order_id }} ships", ParameterFormat.NAMED, ("first_name", "order_id")),
        ("No parameters", ParameterFormat.NAMED, ()),
    ],
)
def test_parameters_are_read_from_the_body(
    body: str, parameter_format: ParameterFormat, expected: tuple[str, ...]
) -> None:
    assert template_parameters(body, parameter_format) == expected


@pytest.mark.parametrize(
    ("body", "parameter_format", "error"),
    [
        ("{{1}} and {{3}}", ParameterFormat.POSITIONAL, "without gaps"),
        ("{{1}} and {{name}}", ParameterFormat.POSITIONAL, "positional templates use"),
        ("{{First}}", ParameterFormat.NAMED, "lowercase identifiers"),
    ],
)
def test_bad_parameters_are_refused(body: str, parameter_format: ParameterFormat, error: str) -> None:
    with pytest.raises(DomainError, match=error):
        template_parameters(body, parameter_format)


def test_header_placeholders_are_refused() -> None:
    with pytest.raises(DomainError, match="header placeholders"):
        _template().publish_version("en", "Body {{1}}", header="Order {{2}}")


def test_the_newest_approved_version_is_the_one_to_send() -> None:
    template = _template()
    template.publish_version("en", "v1 {{1}}")
    template.publish_version("en", "v2 {{1}}")
    assert template.sendable_version("en") is None
    assert template.set_approval_status("en", 1, ApprovalStatus.APPROVED)
    assert template.sendable_version("en") == template.template_version("en", 1)
    template.set_approval_status("en", 2, ApprovalStatus.APPROVED)
    template.set_approval_status("en", 2, ApprovalStatus.PAUSED, "low quality")
    sendable = template.sendable_version("en")
    assert sendable is not None
    assert sendable.version == 1
    assert template.template_version("en", 2).status_reason == "low quality"


def test_unchanged_statuses_and_categories_are_no_ops() -> None:
    template = _template()
    template.publish_version("en", "Hi {{1}}")
    template.set_approval_status("en", 1, ApprovalStatus.REJECTED, "TAG_CONTENT_MISMATCH")
    assert not template.set_approval_status("en", 1, ApprovalStatus.REJECTED, "TAG_CONTENT_MISMATCH")
    assert template.change_category(TemplateCategory.MARKETING, locale="en")
    assert not template.change_category(TemplateCategory.MARKETING)
    changed = template.collect_events()[-1]
    assert isinstance(changed, Template.CategoryChanged)
    assert changed.previous_category is TemplateCategory.UTILITY


def test_quality_is_kept_per_translation_and_an_unchanged_rating_is_no_op() -> None:
    template = _template()
    assert template.rate_quality(TemplateQuality.YELLOW, "pt-BR", previous_quality=TemplateQuality.GREEN)
    assert not template.rate_quality(TemplateQuality.YELLOW, "pt_BR")  # the same translation, spelt otherwise
    assert template.rate_quality(TemplateQuality.GREEN)  # the template as a whole
    assert template.quality == {"pt_BR": TemplateQuality.YELLOW, "": TemplateQuality.GREEN}
    rated = [e for e in template.collect_events() if isinstance(e, Template.QualityChanged)]
    assert [(e.locale, e.previous_quality, e.new_quality) for e in rated] == [
        ("pt_BR", TemplateQuality.GREEN, TemplateQuality.YELLOW), (None, None, TemplateQuality.GREEN)]


def test_statuses_of_unpublished_versions_are_refused() -> None:
    with pytest.raises(DomainError, match="no version 1 for en"):
        _template().set_approval_status("en", 1, ApprovalStatus.APPROVED)
