/* node/net.c: the network (docs/NETWORK.md) over kernels/: load, build, per-frame forward. */
#include "node/node.h"
