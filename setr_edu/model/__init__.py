"""The SETR model: encoder (patch embedding, attention, transformer blocks), decoders, assembly, pretrained weights."""
from .attention import MultiHeadSelfAttention, attention_weights
from .decoders import MLAAuxHead, MLAHead, MLANeck, UpHead, naive_head, pup_aux_head, pup_head
from .encoder import MLP, TransformerBlock, ViTEncoder, resize_pos_embed
from .patch_embed import PatchEmbedding
from .pretrained import PAPER_WEIGHTS, LoadReport, download_paper_weights, load_timm_weights, paper_weights
from .setr import SETR, build_setr
