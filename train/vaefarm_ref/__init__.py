"""vaefarm_ref: the PyTorch reference of the vaefarm colorization network (docs/NETWORK.md).

The C engine (node/net.c over kernels/) is checked against this package's outputs
(train/golden.py writes the golden tensors)."""
from .arch import TINY, FULL, PRESETS, parse_arch, arch_json  # noqa: F401
from .model import Net, build, load_weights, state_dict_f32  # noqa: F401
