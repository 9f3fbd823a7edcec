"""Linking department records to the register's persons and households:
normalisation, blocking, comparison, the Fellegi-Sunter model, assignment."""
