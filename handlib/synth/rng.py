"""Counter-based random numbers: every value is a pure function of (frame key, counter).

A frame's random draws therefore do not depend on which other frames share its batch, on the
batch order or on the thread count (issue 3, "determinism"), and integer hashing is bit-exact on
every machine. Transcendental functions run in float64 and are rounded to float32 so that the
1-ulp differences between vectorised and scalar kernels cannot reach the float32 result.
"""
from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF
_SALTS = {"synthetic": 0x1B873593, "real-like": 0x5BD1E995, "train": 0x27D4EB2F,
          "val": 0x165667B1, "test": 0x61C88647, "clip": 0x3C6EF372}


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' 'lowbias32' integer hash on uint32 values held in int64 (low 32 bits kept)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def salt(name: str) -> int:
    """A fixed 32-bit constant per domain/split name (unknown names hash their characters)."""
    if name in _SALTS:
        return _SALTS[name]
    value = 0x811C9DC5
    for ch in name.encode():  # FNV-1a, so any split name gets its own stream
        value = ((value ^ ch) * 0x01000193) & _M32
    return value


def frame_keys(seed: int, stream: tuple[str, ...], indices: torch.Tensor) -> torch.Tensor:
    """(N,) int64 keys for frames ``indices`` of the named stream (e.g. ("train", "synthetic"))."""
    key = mix32(torch.tensor(seed & _M32, dtype=torch.int64))
    for name in stream:
        key = mix32(key ^ salt(name))
    return mix32((key + indices.to(torch.int64)) & _M32)


def sub_keys(keys: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
    """Keys of sub-streams: (N,) keys x (M,) ids -> (N, M), e.g. clip key -> per-frame keys."""
    return mix32(keys.unsqueeze(-1) ^ mix32(sub.to(torch.int64) + 0x9E3779B9 & _M32))


class FrameRandom:
    """Sequential draws for a batch of frame keys: the k-th draw of a frame is hash(key, k)."""

    def __init__(self, keys: torch.Tensor):
        self.keys = keys.to(torch.int64)
        self.counter = 0

    def _bits(self, n: int) -> torch.Tensor:
        counters = torch.arange(self.counter, self.counter + n, dtype=torch.int64)
        self.counter += n
        return mix32(mix32(self.keys.unsqueeze(-1) ^ mix32(counters)) + 0x632BE5AB & _M32)

    def uniform(self, n: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """(B, n) float32 in (low, high); 24 random bits, so exactly representable."""
        u = ((self._bits(n) >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
        return low + (high - low) * u

    def normal(self, n: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        """(B, n) float32 standard normals by Box-Muller (computed in float64)."""
        u1 = self.uniform(n).double()
        u2 = self.uniform(n).double()
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
        return mean + std * z.float()


def _signed32(c: int) -> int:
    return c - (1 << 32) if c >= 1 << 31 else c


def _mix32_int32(x: torch.Tensor) -> torch.Tensor:
    """:func:`mix32` on int32 tensors (wrapping multiply, masked shifts): same bits, twice the
    SIMD width, for the per-pixel fields."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _signed32(0x7FEB352D)
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _signed32(0x846CA68B)
    return x ^ ((x >> 16) & 0xFFFF)


def pixel_bits(keys: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) int32 random words, one per pixel (a pure function of key, stream, pixel)."""
    count = 1
    for s in shape:
        count *= s
    ids = mix32(torch.arange(count, dtype=torch.int64) + (stream << 24))
    frame = mix32(keys.to(torch.int64) ^ 0x2545F491)
    words = frame.unsqueeze(-1).to(torch.int32) ^ ids.to(torch.int32)  # low 32 bits, wrapped
    return _mix32_int32(words).reshape((keys.shape[0],) + tuple(shape))


def split_uniforms(bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float32 uniforms in (0, 1) with 16 bits each from one int32 word."""
    hi = ((bits >> 16) & 0xFFFF).to(torch.float32)
    lo = (bits & 0xFFFF).to(torch.float32)
    return (hi + 0.5) * (1.0 / 65536.0), (lo + 0.5) * (1.0 / 65536.0)


def pixel_uniform(keys: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) float32 uniforms in (0, 1) with 24 bits, one per pixel."""
    bits = pixel_bits(keys, stream, shape)
    return (((bits >> 8) & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / 16777216.0)


def pixel_normal_pair(keys: torch.Tensor, stream: int, shape: tuple[int, ...]):
    """Two independent (B, *shape) standard normals from one Box-Muller pair (cos and sin)."""
    u1, u2 = split_uniforms(pixel_bits(keys, stream, shape))
    radius = torch.sqrt(-2.0 * torch.log(u1.double()))
    angle = 2.0 * torch.pi * u2.double()
    return (radius * torch.cos(angle)).float(), (radius * torch.sin(angle)).float()


def pixel_normal(keys: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) float32 standard normals per pixel (Box-Muller in float64 on 16-bit
    uniforms: tails are cut at about 4.8 sigma, enough for sensor noise)."""
    u1, u2 = split_uniforms(pixel_bits(keys, stream, shape))
    return (torch.sqrt(-2.0 * torch.log(u1.double())) * torch.cos(2.0 * torch.pi * u2.double())).float()
