"""Board queries and writes: pure functions over a Session, one module per page."""
