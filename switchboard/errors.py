"""Errors that Switchboard reports to a person, each with a message that says what to do."""


class SwitchboardError(Exception):
    """Base class for errors shown to the user without a traceback."""


class KafkaSetupError(SwitchboardError):
    """The Kafka broker could not be found, installed, started or reached."""
