"""The lists for monitoring staff: one workbook per township and night, printable as it
comes, with the visit columns a cadre fills in and returns (``guardline visits import``)."""
