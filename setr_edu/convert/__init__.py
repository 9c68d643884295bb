"""Converters from released SETR checkpoints (official code, mmsegmentation) to setr_edu models."""
from .common import ConversionReport, read_checkpoint
from .mmseg import load_mmseg_setr, to_mmseg_state_dict
from .official import load_official_setr
from .stand_ins import official_stand_ins
