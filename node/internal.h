/* node/internal.h: private to node/: the network's weights as the colorizer reads them. */
#ifndef VF_NODE_INTERNAL_H
#define VF_NODE_INTERNAL_H

#include "node/node.h"

#define VF_NET_MAX_BLOCKS 16

/* A convolution's weights, f32 on the host: OIHW weight, bias (oc) or NULL. */
struct net_conv {
    int ic, oc, k, groups;
    float *w, *b;
};

struct net_norm {               /* InstanceNorm affine */
    int c;
    float *gamma, *beta;
};

struct net_bottleneck {
    int stride;
    struct net_conv c1, c2, c3, ds;     /* BN folded; ds.w == NULL: identity */
};

struct net_adapt {
    struct net_conv conv;
    struct net_norm norm;
    float *slopes;
};

struct net_res {
    struct net_conv conv1, conv2;
    struct net_norm norm1, norm2;
    float *slopes;
};

struct net_dec {
    struct net_conv up, skip, convs[VF_NET_MAX_BLOCKS];
    struct net_norm norm;
};

struct vf_net {
    struct vf_arch arch;
    int64_t params;
    struct net_conv f_conv1;
    struct net_bottleneck f_block[4][VF_NET_MAX_BLOCKS];
    struct net_adapt a_adapt[4];
    struct net_res a_res[VF_NET_MAX_BLOCKS];
    struct net_conv a_theta, a_phi;
    struct net_conv c_enc[4][VF_NET_MAX_BLOCKS];
    struct net_norm c_enc_norm[4];
    struct net_conv c_down[4];
    struct net_conv c_mid[8][8];
    struct net_norm c_mid_norm[8];
    struct net_conv c_mu;
    struct net_dec c_dec[3];
    struct net_conv c_out;
};

/* Check an architecture's ranges (the limits the colorizer and kernels/ can build). */
int vf_arch_check(const struct vf_arch *arch, const char *what, struct vf_error *err);

/* Parse the "vaefarm" metadata JSON into an architecture (checked ranges). */
int vf_arch_from_json(const char *text, const char *what, struct vf_arch *arch,
                      struct vf_error *err);

/* The luma rows chroma row `cy` of a picture `fh` rows high averages, vertical subsampling
 * 2^sh: *n rows from *y0, *step apart (2cy, 2cy+1; an interlaced 4:2:0 picture's from one field:
 * 4(cy/2) + cy%2 and two below). For tests. */
void vf_chroma_rows_(int cy, int sh, bool interlaced, int fh, int *y0, int *step, int *n);

#endif /* VF_NODE_INTERNAL_H */
