"""The knowledge the bot speaks from: lock reasons and FAQ topics, loaded from ``knowledge/``."""
