"""Pictures for the book: the whole-model diagram, dataset palettes, training curves and prediction grids,
interactive explorers."""
