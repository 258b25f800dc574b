/*
 * node/node.h: the colorization network (weights, F/A/C, the per-frame recurrence) and, with
 * the farm issue, the per-rank chunk pipeline.
 *
 * Uses: kernels/ (tensors and operators), shard/, config/, common/. Knows nothing of MPI: the
 * coordinator reads the weights file once and hands its bytes to vf_net_load_buffer.
 */
#ifndef VF_NODE_H
#define VF_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/common.h"
#include "kernels/kernels.h"
#include "shard/shard.h"

/* ============================== safetensors ================================================ */
/* The format: 8 bytes little-endian header length N, N bytes of JSON (an object: tensor name →
 * {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
 * string → string), then the data, which the offsets index relative to its start. The parser
 * trusts nothing: every size, offset, dtype, shape and the JSON itself are checked, the data
 * must be covered exactly (no holes, no overlaps), and a hostile file gives VF_EINVAL with what
 * is wrong and where, never a crash. */

#define VF_ST_MAX_DIMS 8
#define VF_ST_MAX_HEADER (100u << 20)   /* bytes of JSON header accepted */

enum vf_st_dtype { VF_ST_F32 = 0, VF_ST_BF16, VF_ST_F16, VF_ST_F64, VF_ST_I64, VF_ST_I32,
                   VF_ST_I16, VF_ST_I8, VF_ST_U8, VF_ST_BOOL };

struct vf_st_tensor {
    char *name;
    enum vf_st_dtype dtype;
    int ndim;
    int64_t shape[VF_ST_MAX_DIMS];
    int64_t count;              /* product of shape (1 for a scalar) */
    const void *data;           /* into the file's bytes; little-endian; may be unaligned */
    size_t nbytes;
};

struct vf_safetensors {
    size_t n;
    struct vf_st_tensor *tensors;   /* in order of data offset */
    size_t n_meta;
    char **meta_keys, **meta_values;
    /* private */
    void *buf_;                 /* owned copy of the file, or NULL when borrowing */
    size_t len_;
};

/* Parse a file (read whole into memory). `what` names the file in errors. */
int vf_safetensors_open(const char *path, struct vf_safetensors **out, struct vf_error *err);
/* Parse bytes already in memory; with copy = false the bytes must outlive the result. */
int vf_safetensors_parse(const void *buf, size_t len, bool copy, const char *what,
                         struct vf_safetensors **out, struct vf_error *err);
const struct vf_st_tensor *vf_safetensors_find(const struct vf_safetensors *st, const char *name);
const char *vf_safetensors_meta(const struct vf_safetensors *st, const char *key);
/* Convert a F32, BF16, F16 or F64 tensor's values to f32 (count floats into out). */
int vf_st_to_f32(const struct vf_st_tensor *t, float *out, struct vf_error *err);
const char *vf_st_dtype_name(enum vf_st_dtype dt);
void vf_safetensors_close(struct vf_safetensors **st);

/* ============================== the network ================================================ */

#define VF_UPSAMPLE_MAX_RADIUS 8    /* the architecture's upsample.radius (train/vaefarm_ref/arch.py) */

#define VF_GATE_RAMP_MAX 1000       /* the architecture's C.gate_ramp (frames; train/vaefarm_ref/arch.py) */

#define VF_PROPAGATE_MAX_FRAMES 16  /* len(propagate.shares) (train/vaefarm_ref/arch.py); its radius
                                       and patch: kernels.h's VF_PROPAGATE_MAX_RADIUS, _PATCH */

/* The architecture, from the weights file's metadata (docs/NETWORK.md). */
struct vf_arch {
    char name[32];
    int f_stem, f_widths[4], f_blocks[4];
    int a_adapter, a_res_blocks;
    float tau;
    /* A.refine (NETWORK.md, "A"): the warp refined at the network's size by luma matching in a
     * (2·radius + 1)² window around the attention's expected position; radius 0: off */
    int a_refine_radius, a_refine_patch;
    float a_refine_h;
    /* its temporal candidates: X̂(t−1)'s a, b in a (2·temporal + 1)² window around each pixel,
     * weighed by the lightness match with width temporal_h; 0: none */
    int a_refine_temporal;
    float a_refine_temporal_h;
    /* the sub-pixel temporal candidate (A.refine.subpixel), or not */
    bool a_refine_subpixel;
    /* the motion-predicted temporal candidates (A.refine.predict): a (2·predict + 1)² window
     * around each pixel's cheapest temporal displacement of frame t−1 (the recurrent state);
     * 0: none */
    int a_refine_predict;
    int c_widths[4], c_enc_convs[4];
    int c_mid_groups, c_mid_len[8], c_mid_dil[8][8];
    int c_latent, c_dec_widths[3], c_dec_convs[3];
    bool c_residual;            /* ab = W^ab + 128·tanh(C.out) (else 128·tanh(C.out)) */
    bool c_gate;                /* residual only: C.out has a third channel, the gate, and
                                   ab = W^ab + σ(C.out₂)·128·tanh(C.out₀,₁) */
    float c_gate_motion;        /* gate only, 0 = none: κ of C.gate_motion, the gate scaled by
                                   m / (m + κ), m the frame's mean |L(t) − L(t−1)| */
    bool c_gate_motion_px;      /* C.gate_motion_radius given: that m per pixel, over its */
    int c_gate_motion_radius;   /* (2r + 1)² window, r = C.gate_motion_radius */
    int c_gate_ramp;            /* gate only, 0 = none: K of C.gate_ramp, the gate scaled by
                                   min(1, k / K) on the k-th frame after a reference
                                   pass-through (1 where none: the zero state) */
    int inference_h, inference_w;
    /* post-processing step 1 (NETWORK.md): the guided filter's radius and ε, radius 0 being
     * bilinear upsampling; a file without "upsample" has the guided filter (2, 1e-3) */
    int up_radius;
    float up_eps;
    /* post-processing step 1b (NETWORK.md, "propagate"): on the k-th frame after a reference
     * pass-through (k ≤ prop_frames), frame t−1's final a, b at the film's size carried by block
     * matching of the grey (±prop_radius, prop_patch² windows) and blended in by prop_shares[k−1],
     * scaled per pixel by the match's confidence (prop_confidence S; 0: not scaled), the
     * whole-pixel match refined by a Lucas–Kanade step with prop_subpixel;
     * prop_frames 0: none (a file without "propagate") */
    int prop_frames, prop_radius, prop_patch;
    float prop_shares[VF_PROPAGATE_MAX_FRAMES];
    float prop_confidence;
    bool prop_subpixel;
};

/* Weights, loaded and checked once; read-only afterwards, shared by any number of colorizers
 * (and threads). */
struct vf_net;

/* The architectures NETWORK.md defines by name: "tiny", "full". VF_EINVAL for another name. */
int vf_arch_preset(const char *name, struct vf_arch *arch, struct vf_error *err);

int vf_net_load(const char *path, struct vf_net **out, struct vf_error *err);
/* A network of `arch` with random weights drawn at `seed` (benchmarks and tests: a fixed-seed
 * Kaiming-style init that keeps activations in range, not a trained model). */
int vf_net_random(const struct vf_arch *arch, uint64_t seed, struct vf_net **out,
                  struct vf_error *err);
/* From the bytes of a weights file (e.g. broadcast by the coordinator); copied. */
int vf_net_load_buffer(const void *buf, size_t len, const char *what, struct vf_net **out,
                       struct vf_error *err);
const struct vf_arch *vf_net_arch(const struct vf_net *net);
int64_t vf_net_params(const struct vf_net *net);      /* parameters used at inference */
void vf_net_free(struct vf_net **net);
/* Multiply-accumulates per frame (reference cached) per module at H × W: F, A (attention
 * products included), C; and those of the attention products alone. */
void vf_net_macs(const struct vf_net *net, int h, int w, double *f, double *a, double *c,
                 double *attn);

struct vf_colorizer_opts {
    struct vf_backend *be;      /* where it runs (not owned) */
    enum vf_dtype precision;    /* VF_F32 or VF_BF16 (VF_F16 on CUDA) */
    int h, w;                   /* inference size, multiples of 8 */
    int full_h, full_w;         /* post-processing size (the film's); 0 = no post-processing */
    float kr, kb;               /* output matrix for keep-luma (0, 0 = BT.709) */
    bool graph;                 /* replay each frame's F, A, C from a CUDA graph captured at the
                                   second network frame (the first runs eagerly: the warm-up), on
                                   backends that capture; ignored on the CPU. Frames whose gate is
                                   ramped (C.gate_ramp, the K − 1 after a pass-through) run
                                   eagerly and are neither captured nor replayed. The per-module
                                   times then become one: vf_colorizer_times.graphed */
    bool passthrough;           /* reference pass-through (film.yaml reference_passthrough: auto,
                                   what vaefarm runs with): a frame whose grey is its reference's
                                   luma (VF_PASSTHROUGH_TOL, _FRACTION) is the reference's own
                                   picture; it takes the reference's a, b instead of the
                                   network's, and the next frame's recurrent state starts from
                                   them (docs/NODE.md "Reference pass-through") */
};

/* A frame is its reference's own picture when at most VF_PASSTHROUGH_FRACTION (0.5 %) of its
 * pixels (at inference size) differ from the reference's luma Y′ (with the film's Kr, Kb) by
 * more than VF_PASSTHROUGH_TOL (4/255). On the evaluation films each shot's own first frame,
 * against its reference saved as 8-bit RGB, has 0.00 to 0.18 % of its pixels off (the most:
 * vtest, colours clipped by the YUV → RGB conversion); the closest other frame has 2.0 % (the
 * next frame of vtest: pedestrians walking before a static camera). docs/NODE.md. */
#define VF_PASSTHROUGH_TOL (4.0f / 255.0f)
#define VF_PASSTHROUGH_FRACTION 0.005

/* Per-module time, seconds, accumulated since creation (or vf_colorizer_times_reset). */
struct vf_colorizer_times {
    double f, a, c, post, reference;
    double graphed;             /* whole frames replayed from a CUDA graph (F + A + C) */
    long frames, references;
    long passthrough;           /* frames of those that took the reference's colours (no network) */
};

/* One colorizer: every buffer and primitive for its size and precision is allocated here; the
 * per-frame calls allocate nothing. Not thread-safe: one colorizer per thread, and one backend
 * per thread (colorizers on one backend share its workspace). A failed frame resets the
 * recurrence to the zero state. */
struct vf_colorizer;

int vf_colorizer_create(struct vf_colorizer **out, const struct vf_net *net,
                        const struct vf_colorizer_opts *opts, struct vf_error *err);
void vf_colorizer_destroy(struct vf_colorizer **c);

/* A new shot (or chunk): the reference image, sRGB [0,1], planar 3 × h × w at inference size.
 * Computes its features once (F, A's adapters, residual blocks, φ, centring) and resets the
 * recurrent state to zeros. rgb_full (may be NULL): the same image at the full size
 * (3 × full_h × full_w), read only with opts.passthrough: a pass-through frame's post-processing
 * then takes its a, b at full detail; without it they are upsampled from inference size. */
int vf_colorizer_set_reference(struct vf_colorizer *c, const float *rgb, const float *rgb_full,
                               struct vf_error *err);
/* Reset the recurrent state to zeros (first frame of a shot, of every warm-up). Fails only where
 * the device does (a GPU's earlier kernel fault shows here); the next frame then resets first. */
int vf_colorizer_reset(struct vf_colorizer *c, struct vf_error *err);

/* Intermediate tensors a frame call can copy out (golden tests, the warp-only baseline). */
struct vf_colorizer_taps {
    float *f_tap[4];            /* frame's F taps, planar c × h × w, l2n'd; NULL = skip */
    float *warp_ab;             /* W^ab, 2 × H × W */
    float *conf;                /* S, 1 × H × W */
};

/* Colorize one frame: grey Y′ [0,1] at inference size (h × w floats). Writes ab (2 × h × w,
 * planar) and advances the recurrence. taps may be NULL. With opts.passthrough, a frame that is
 * the reference's own picture (see VF_PASSTHROUGH_TOL) runs no network: ab = the reference's,
 * the next frame's state = (this L, the reference's a, b), and taps are not written. */
int vf_colorizer_frame(struct vf_colorizer *c, const float *grey, float *ab,
                       struct vf_colorizer_taps *taps, struct vf_error *err);
/* Post-processing of the last frame's ab at full size: grey_full (full_h × full_w floats in
 * [0,1]) → rgb (3 × full planar, may be NULL) and cbcr (2 × full planar, may be NULL; with both
 * NULL only the state below is updated). With the arch's propagate, the k-th frame after a
 * reference pass-through (k ≤ len(propagate.shares)) carries frame t−1's final a, b at full size
 * (NETWORK.md, post-processing 1b): that needs frame t−1 post-processed too, else the frame takes
 * none (see vf_colorizer_post_carries). */
int vf_colorizer_post(struct vf_colorizer *c, const float *grey_full, float *rgb, float *cbcr,
                      struct vf_error *err);
/* Whether the next frame would carry the last frame's post-processed a, b (the arch's propagate,
 * within its frames after a pass-through): a caller that drops the last frame (a chunk's
 * warm-up) must still post-process it, with rgb = cbcr = NULL, for the frames it keeps to be
 * those of a run without the drop. */
bool vf_colorizer_post_carries(const struct vf_colorizer *c);

const struct vf_colorizer_times *vf_colorizer_times(const struct vf_colorizer *c);
void vf_colorizer_times_reset(struct vf_colorizer *c);
/* Sizes of F's taps for a frame of h × w (channels, height, width). */
void vf_colorizer_tap_shape(const struct vf_colorizer *c, int tap, int *ch, int *th, int *tw);

/* ============================== chunk pipeline ============================================= */
/* One chunk of a planned film → one segment file (DESIGN.md §4, docs/NODE.md). With
 * job->queue > 0 decode ▶ infer ▶ encode overlap: a decode thread and an encode thread around
 * the calling thread (which runs the network), joined by bounded queues of job->queue frames;
 * with 0 they run one after the other on the calling thread. The bytes are the same either way. */

/* The film-dependent colorizer options: full_h/full_w = the film's size (post-processing on),
 * kr/kb = the film's matrix (color_space: bt709, smpte170m/bt470bg (BT.601), bt2020nc/bt2020c,
 * fcc, smpte240m; unknown: BT.709 at height >= 720, BT.601 below, as shard/ and players guess).
 * Leaves be, precision, h and w to the caller. */
void vf_node_colorizer_opts(const struct vf_media_info *info, struct vf_colorizer_opts *opts);

/* The default inference size for a film (film.yaml `inference_size` absent, DESIGN.md §8): the
 * architecture's nominal pixel count (inference_h × inference_w) at the film's display aspect
 * (width × sar_num / (height × sar_den); SAR 0/1 counts as 1:1): w = sqrt(N·aspect) and
 * h = sqrt(N / aspect), each rounded to the nearest multiple of 8, at least 32. A 16:9 film with
 * the tiny model (144 × 256) gets 144 × 256; a 4:3 one 168 × 224. */
void vf_node_inference_size(const struct vf_arch *arch, const struct vf_media_info *info, int *h,
                            int *w);

/* Load a reference image (PNG, JPEG, or any file FFmpeg reads: its first frame) with shard's
 * decoder (VF_DECODE_RGB) and resize it to h × w as sRGB [0, 1], planar 3 × h × w, into rgb
 * (caller's, 3·h·w floats). Resizing: area average per axis where it shrinks, bilinear
 * (align_corners = false) where it grows; the aspect ratio is not kept (the reference is an
 * exemplar of colours, stretched to the inference frame). *frames (when not NULL): the frames
 * in the file (a video given as a reference: more than 1). */
int vf_node_load_reference(const char *path, int h, int w, float *rgb, int64_t *frames,
                           struct vf_error *err);

/* Whether the chunk pipeline writes encode.pix_fmt `name` (planar YUV 4:4:4, 4:2:2 or 4:2:0 at
 * 8 to 16 bits): VF_OK, or VF_EUNSUPPORTED saying which to choose; for the check before any
 * work (the codec's own acceptance is shard's vf_shard_encoder_check). */
int vf_node_check_pix_fmt(const char *name, struct vf_error *err);

/* Host bytes a chunk's pipeline holds for its frames in flight, beside the colorizer's backend
 * (none of it counted there): 2·queue + 3 frame slots (1 without threads), each 14 bytes a film
 * pixel (the 16-bit luma, the f32 grey and f32 Cb/Cr at the film's size) and the grey at the
 * inference size h × w, plus the resampling rows, the ab and one output frame. The decoder's and
 * encoder's own buffers (FFmpeg's) are not in it. */
size_t vf_node_chunk_bytes(const struct vf_media_info *info, int h, int w, int queue);

struct vf_chunk_job {
    const struct vf_media_info *info;   /* the probed film (probe once per rank, not per chunk) */
    const struct vf_chunk *chunk;       /* warm_start <= start < end <= info->frames */
    const struct vf_encode_spec *encode;/* the film's encode settings */
    const char *segment;                /* output path (written as a temporary, then renamed) */
    struct vf_colorizer *colorizer;     /* the caller's, made with vf_node_colorizer_opts(info)
                                           and h × w below; not thread-safe: one per thread */
    int h, w;                           /* the colorizer's inference size */
    const float *reference_rgb;         /* 3 × h × w: set as the colorizer's reference first;
                                           NULL: the colorizer already holds the shot's */
    const float *reference_rgb_full;    /* with reference_rgb, may be NULL: the same image at the
                                           film's size (vf_colorizer_set_reference) */
    int queue;                          /* frames each queue holds (decode ▶ infer, infer ▶
                                           encode), 0..64; 0: no threads, one stage after the
                                           other (VF_EINVAL outside that range) */
    /* When not NULL: checked before every frame; once non-zero the chunk stops, removes its
     * temporary segment and returns VF_EINTERRUPTED (a signal handler may set it). */
    const atomic_int *stop;
    /* When not NULL: called on the calling thread after each frame is colorized, with the
     * frames of this chunk done so far (warm-up included) out of frames_decoded. It may set
     * *stop (e.g. after polling for a message); it must not call into this chunk. */
    void (*progress)(void *opaque, int64_t done, int64_t total);
    void *progress_opaque;
};

struct vf_chunk_result {
    char checksum[65];                  /* sha256 hex of the segment */
    int64_t frames_decoded;             /* end - warm_start */
    int64_t frames_warmup;              /* start - warm_start, colorized and dropped */
    int64_t frames_kept;                /* end - start, in the segment */
    int64_t frames_passthrough;         /* of the frames colorized (warm-up included), those that
                                           took the reference's colours (reference pass-through:
                                           vf_colorizer_times.passthrough) */
    double t_decode;                    /* s: decoding, luma → grey (full and inference size) */
    double t_infer;                     /* s: vf_colorizer_frame + vf_colorizer_post */
    double t_encode;                    /* s: chroma packing, encoding, muxing, close */
    double t_total;                     /* s: the whole call */
    /* ab (2 × h × w, planar, inference size) of frame start − 1 from this chunk's warm-up (for
     * the seam error, DESIGN.md §4; NULL when the chunk has no warm-up) and of its last kept
     * frame end − 1 (what the next chunk's warm-up is compared with). malloc'd: free with
     * vf_node_chunk_result_free. */
    float *warm_ab;
    float *last_ab;
};

/* Colorize one chunk: decode frames [warm_start, end) (seek, frame-exact), reset the recurrence
 * at warm_start (zero state at a shot's first frame and at every warm-up), colorize each frame,
 * drop the warm-up frames [warm_start, start) and encode the kept ones [start, end) with their
 * source pts into job->segment. Each output frame's luma plane is the input's (bit for bit at
 * the same depth; shifted left when the output is deeper, right when shallower); its chroma is
 * vf_colorizer_post's Cb, Cr quantised to the output's range (limited: centre 128, ±112 at
 * 8 bits; full: ±127.5; scaled by 2^(bits−8)) and subsampled by averaging for 4:2:2/4:2:0.
 * The output pixel format must be planar YUV (4:4:4, 4:2:2, 4:2:0; 8..16 bits).
 * On error nothing is left at job->segment (the temporary file is removed), *res holds no
 * buffers, and err says what failed, where (film, chunk, frame). */
int vf_node_colorize_chunk(const struct vf_chunk_job *job, struct vf_chunk_result *res,
                           struct vf_error *err);
void vf_node_chunk_result_free(struct vf_chunk_result *res);

/* Mean |Δab| over 2 × h × w values (the seam error, DESIGN.md §4), in ab units. */
double vf_node_seam_error(const float *a, const float *b, int h, int w);

#endif /* VF_NODE_H */
