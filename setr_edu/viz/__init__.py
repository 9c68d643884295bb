"""Pictures for the book: dataset palettes, training curves and prediction grids, interactive explorers."""
