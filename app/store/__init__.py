"""Durable storage: write-ahead log, immutable segments, the points store and the catalog."""
