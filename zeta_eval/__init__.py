"""zeta_eval."""
