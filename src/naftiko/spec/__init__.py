"""Capability documents: parsing with positions, lenient normalising, imports, binds, checks."""
