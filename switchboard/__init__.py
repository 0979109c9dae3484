"""Switchboard: one entry point for messaging customers over WhatsApp and other channels, on Apache Kafka."""

__version__ = "0.1.0"
