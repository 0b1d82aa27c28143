"""fetchheads: fetch the HTTP response headers of many hosts at once."""

__version__ = "0.1.0"
