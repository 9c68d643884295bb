"""The datasets' class names and colour palettes, for plotting: they live in :mod:`setr_edu.data.palettes` (the
datasets need them too, and data sits below viz); this module keeps the ``setr_edu.viz.palette`` names working."""
from ..data.palettes import (  # noqa: F401
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    PALETTES,
    PASCAL_CONTEXT_CLASSES,
    colorize,
    generic_palette,
    palette_for,
    voc_colormap,
)
