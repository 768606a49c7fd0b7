"""Library behind the edge training benchmark suite: one small module per concern."""
