"""The vocabulary tasks/ and catalog/ share, importing neither: cards and case files, typed catalog
rows with their Arrow schemas, and protocol specs."""
