"""Performance tools for chapter 15: FLOP counting, memory estimates, interleaved benchmarks, fast paths."""
from .bench import bench_encoder, bench_setr, encoder_pair, timm_blocks
from .fastpaths import autocast, fused_sgd_available, graph_breaks, set_fused_attention, to_channels_last
from .flops import FlopCount, count_flops, vit_flops
from .memory import MemoryEstimate, estimate_training_memory, estimate_training_memory_both, saved_activation_bytes
from .tables import format_table, variant_costs
from .timing import Timing, peak_tflops, time_interleaved
from .profiling import op_calls, op_kind, profile_step
from .plan import expected_time, gpu_peak
