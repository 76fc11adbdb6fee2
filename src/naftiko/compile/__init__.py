"""Load time: a loaded capability compiled once into the plans the engine executes."""
