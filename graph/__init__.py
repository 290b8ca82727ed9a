"""pixplan.graph."""
