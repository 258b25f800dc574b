"""Training of the vaefarm network (docs/TRAINING.md): data (2-frame clips), losses, the step."""
