"""Shared by every kassa package: settings, the checkout message schema, business days, errors."""
