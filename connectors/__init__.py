"""Readers of the departments' deliveries (docs/sources.md) and their Great
Expectations suites: one declaration per source, one reader per format."""
