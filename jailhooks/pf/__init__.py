"""Pure pf rule model and rendering: no I/O, same input, same bytes."""
