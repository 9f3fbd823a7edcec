"""The closed loop: what cadres found at the door, read back from the lists they
return, and what it does to the next nights' lists."""
