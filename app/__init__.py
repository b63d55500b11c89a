"""The Innerspace service: storage, collections, jobs and the HTTP API over ``index/``."""

__version__ = "0.1.0"
