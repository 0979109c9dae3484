"""Channel drivers, webhook receivers and ERP ingestion; planned in issue 5."""
