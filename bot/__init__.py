"""unlockbot: a chat assistant that explains CRM account locks and gets employees back in."""

__version__ = "0.1.0"
