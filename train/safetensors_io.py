#!/usr/bin/python3
"""safetensors read/write by hand (no dependency on the safetensors package).

File: 8-byte little-endian header length n, n bytes of JSON header (padded with spaces to a
multiple of 8), then the tensors' raw little-endian bytes, contiguous, no holes, in the order of
their data_offsets. Header: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}}.
"""
import hashlib
import json
import os
import struct

import numpy as np

# safetensors dtype <-> numpy dtype (BF16 handled separately: numpy has none)
_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
       "I8": "i1", "U8": "u1", "BOOL": "?"}
_FROM_NP = {np.dtype(v).str: k for k, v in _NP.items()}


class SafetensorsError(ValueError):
    pass


def file_sha256(path):
    """The hex sha256 of a file's bytes: the identity of a weights file (what quality.py stamps
    its outputs with, what a stage-5 sequence set and checkpoint were made for)."""
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        for blk in iter(lambda: fp.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def warp_sha256(path, carry=True):
    """sha256 of what the warp (F and A) reads of a weights file: the architecture metadata without
    its "C" and the tensors not under "C." (names, dtypes, shapes, bytes), not C's architecture or
    tensors nor the description. A model that changes only C (stage 5, docs/TRAINING.md; a gate
    on C) has its predecessor's warp: quality.py reuses its warp baseline, and a stage-5 sequence
    set prepared with one serves the other. carry=False leaves out the architecture's
    "propagate" too (film-size propagation after the warp, which the warp baseline takes and a
    stage-5 set does not hold: finetune_c.py's stamp; a file without the key has one hash)."""
    tensors, meta = load(path, as_torch=False)
    h = hashlib.sha256()
    for k in sorted(meta):
        if k == "vaefarm":
            arch = json.loads(meta[k])
            arch.pop("C", None)
            if not carry:
                arch.pop("propagate", None)
            h.update(json.dumps([k, arch], sort_keys=True).encode())
        elif k != "vaefarm_weights":
            h.update(json.dumps([k, meta[k]]).encode())
    for k in sorted(tensors):
        if not k.startswith("C."):
            t = tensors[k]
            h.update(json.dumps([k, str(t.dtype), list(t.shape)]).encode())
            h.update(t.tobytes())
    return h.hexdigest()


def _to_numpy(t):
    """torch tensor or numpy array -> (dtype name, C-contiguous little-endian bytes, shape)."""
    try:
        import torch
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().contiguous()
            if t.dtype == torch.bfloat16:
                raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
                return "BF16", raw, list(t.shape)
            t = t.numpy()
    except ImportError:
        pass
    a = np.asarray(t)
    if not a.flags.c_contiguous:
        a = a.copy(order="C")   # (np.ascontiguousarray would turn a 0-d array into 1-d)
    key = a.dtype.str if a.dtype.byteorder == "|" else a.dtype.newbyteorder("<").str
    if key not in _FROM_NP:
        raise SafetensorsError("unsupported dtype %s" % a.dtype)
    return _FROM_NP[key], a.astype(key, copy=False).tobytes(), list(a.shape)


def save(path, tensors, metadata=None):
    """tensors: name -> torch tensor / numpy array (written in sorted name order);
    metadata: str -> str (goes to __metadata__). Written to PATH.tmp, then renamed."""
    header = {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("__metadata__ must map strings to strings")
        header["__metadata__"] = dict(metadata)
    blobs, off = [], 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsError("a tensor may not be named __metadata__")
        dt, raw, shape = _to_numpy(tensors[name])
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as fp:
        fp.write(struct.pack("<Q", len(h)))
        fp.write(h)
        for b in blobs:
            fp.write(b)
    os.replace(path + ".tmp", path)   # the file appears only when complete


def load(path, as_torch=True):
    """-> (name -> tensor (torch if as_torch else numpy; BF16 as torch.bfloat16 / f32 numpy),
    metadata dict). Validates the header, every offset and shape, and that the data is contiguous
    with no holes and nothing after it."""
    with open(path, "rb") as fp:
        buf = fp.read()
    if len(buf) < 8:
        raise SafetensorsError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8 or n > 100 * 1024 * 1024:
        raise SafetensorsError("%s: header length %d beyond the file" % (path, n))
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError("%s: bad JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsError("%s: __metadata__ must map strings to strings" % path)
    data = memoryview(buf)[8 + n:]
    spans, out = [], {}
    for name, d in header.items():
        if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError("%s: %s: bad entry %r" % (path, name, d))
        dt, shape, (b, e) = d["dtype"], d["shape"], d["data_offsets"]
        if dt != "BF16" and dt not in _NP:
            raise SafetensorsError("%s: %s: unsupported dtype %s" % (path, name, dt))
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError("%s: %s: bad shape %r" % (path, name, shape))
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = count * (2 if dt == "BF16" else np.dtype(_NP[dt]).itemsize)
        if not (isinstance(b, int) and isinstance(e, int) and 0 <= b <= e <= len(data)) or e - b != size:
            raise SafetensorsError("%s: %s: data_offsets %r do not fit shape %r %s (data %d bytes)"
                                   % (path, name, [b, e], shape, dt, len(data)))
        spans.append((b, e, name))
        raw = bytes(data[b:e])
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).reshape(shape)
            if as_torch:
                import torch
                out[name] = torch.from_numpy(arr.copy()).to(torch.bfloat16)
                continue
        else:
            arr = np.frombuffer(raw, dtype=_NP[dt]).reshape(shape).copy()
        if as_torch:
            import torch
            out[name] = torch.from_numpy(arr)
        else:
            out[name] = arr
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise SafetensorsError("%s: %s starts at %d, expected %d (hole or overlap)" % (path, name, b, pos))
        pos = e
    if pos != len(data):
        raise SafetensorsError("%s: %d bytes after the last tensor" % (path, len(data) - pos))
    return out, meta


def load_metadata(path):
    with open(path, "rb") as fp:
        (n,) = struct.unpack("<Q", fp.read(8))
        header = json.loads(fp.read(n).decode("utf-8"))
    return header.get("__metadata__", {}) or {}


def is_safetensors(path):
    """Whether path reads as a safetensors file (its header), whatever else it is not."""
    try:
        load_metadata(path)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    import sys
    for p in sys.argv[1:]:
        t, m = load(p, as_torch=False)
        print(p, "metadata:", m)
        for k, v in t.items():
            print("  %-48s %-8s %s" % (k, v.dtype, list(v.shape)))
