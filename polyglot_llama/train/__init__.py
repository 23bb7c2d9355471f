"""Training: the one loop, pure loss functions, and one module per stage."""
