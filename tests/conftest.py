"""Shared test configuration: nothing here needs a broker."""
