"""Nova compute driver for IBM PowerVM, through the NovaLink REST API (pypowervm)."""
