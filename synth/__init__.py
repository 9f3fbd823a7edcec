"""The synthetic county: a register, one night's department deliveries in the exact
contract formats with realistic defects and planted shocks, and the ground truth."""
