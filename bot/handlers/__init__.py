"""Channels: each turns platform events into ``Inbound`` and sends ``Rendered`` replies its own way."""
