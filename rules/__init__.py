"""The rule catalogue of docs/rules.md as data, the household feature table,
and the engine that turns them into flags with evidence."""
