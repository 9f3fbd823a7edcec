"""The night at a glance: one self-contained HTML page per county and night."""
