"""pixplan.training."""
