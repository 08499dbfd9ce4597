"""canary: scheduled quality canaries for hosted LLMs."""

__version__ = "0.1.0"
