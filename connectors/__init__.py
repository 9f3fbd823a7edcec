"""Readers of the departments' deliveries (contracts/SOURCES.md) and their Great
Expectations suites: one declaration per source, one reader per format."""
