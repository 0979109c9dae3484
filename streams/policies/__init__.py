"""Pure pipeline policies (rate limits, retries, quiet hours, conditions): no Kafka, no faust, just decisions."""

from streams.policies.backoff import RetryPolicy
from streams.policies.conditions import Condition, ConditionError
from streams.policies.daily_count import DailyCount
from streams.policies.quiet_hours import QuietHours
from streams.policies.send_window import SendWindow
from streams.policies.token_bucket import TokenBucket

__all__ = ["Condition", "ConditionError", "DailyCount", "QuietHours", "RetryPolicy", "SendWindow", "TokenBucket"]
