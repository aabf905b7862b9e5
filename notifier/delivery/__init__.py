"""Delivery: format an event for its webhook, sign it, POST it, retry it."""
