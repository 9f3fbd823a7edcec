"""Guardline: cross-department early warning for households at risk of falling back
into poverty. This package holds the command line and what every step shares."""
