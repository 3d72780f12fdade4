"""Convolution and pooling on NCHW arrays (weights OIHW), as in PyTorch.

Convolution is a matrix product once the input is unrolled: im2col takes every
kh×kw window of every channel as one row (a strided *view* of the padded
input, copied once into a matrix), so

    y[n, o, i, j] = Σ_{c, u, v} w[o, c, u, v] · x[n, c, i·s + u, j·s + v] + b[o]
                  = (cols @ W_matᵀ)[(n, i, j), o] + b[o]

and the backward pass is the chain rule through that product:
∂L/∂W_mat = gᵀ @ cols, ∂L/∂cols = g @ W_mat, then col2im adds each window's
gradient back where the window came from (windows overlap, so they add up).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from deepdive.scratch.tensor import Function


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _pad(x: np.ndarray, ph: int, pw: int, value=0.0) -> np.ndarray:
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """A read-only view (N, C, OH, OW, kh, kw) of every window: no copy."""
    n, c, h, w = xp.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {kh}x{kw} is larger than the (padded) input {h}x{w}")
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, (n, c, oh, ow, kh, kw), (s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False)


def _scatter_windows(grad_windows, shape, kh, kw, sh, sw, ph, pw, dtype):
    """col2im: add each window's gradient (N, C, OH, OW, kh, kw) back into an input-shaped array."""
    n, c, h, w = shape
    oh, ow = grad_windows.shape[2:4]
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    for u in range(kh):
        for v in range(kw):
            out[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += grad_windows[:, :, :, :, u, v]
    return out[:, :, ph:ph + h, pw:pw + w]


class Conv2d(Function):
    """y = cols @ W_matᵀ + b, a 2-D cross-correlation (PyTorch's conv2d) as im2col + one matrix product;
    ∂L/∂W_mat = gᵀ @ cols, ∂L/∂b = Σ g, ∂L/∂x = col2im(g @ W_mat).
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=1, padding=0):
        (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
        o, c, kh, kw = weight.shape
        n = x.shape[0]
        win = _windows(_pad(x, ph, pw), kh, kw, sh, sw)
        oh, ow = win.shape[2:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)  # the one copy
        w_mat = weight.reshape(o, c * kh * kw)
        y = cols @ w_mat.T
        if bias is not None:
            y += bias
        ctx.save_for_backward(cols, w_mat)
        ctx.geometry = (x.shape, weight.shape, (oh, ow), (sh, sw), (ph, pw))
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, g):
        cols, w_mat = ctx.saved
        x_shape, w_shape, (oh, ow), (sh, sw), (ph, pw) = ctx.geometry
        n, c = x_shape[:2]
        o, _, kh, kw = w_shape
        g_mat = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        gw = (g_mat.T @ cols).reshape(w_shape)
        # Σ over N·OH·OW positions: a long sum down a column, accumulated in float64 so float32
        # runs lose no more to rounding than torch does
        gb = g_mat.sum(axis=0, dtype=np.float64).astype(g_mat.dtype, copy=False)
        gx = None
        if ctx.needs_input_grad[0]:
            g_cols = (g_mat @ w_mat).reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
            gx = _scatter_windows(g_cols, x_shape, kh, kw, sh, sw, ph, pw, cols.dtype)
        return gx, gw, gb


class MaxPool2d(Function):
    """y = max over each window;  ∂L/∂x = g at each window's (first) maximum, as PyTorch."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0):
        (kh, kw) = _pair(kernel_size)
        (sh, sw) = _pair(stride if stride is not None else kernel_size)
        (ph, pw) = _pair(padding)
        win = _windows(_pad(x, ph, pw, -np.inf), kh, kw, sh, sw)
        flat = win.reshape(win.shape[:4] + (kh * kw,))
        arg = flat.argmax(axis=-1)
        ctx.save_for_backward(arg)
        ctx.geometry = (x.shape, kh, kw, sh, sw, ph, pw, x.dtype)
        return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]

    @staticmethod
    def backward(ctx, g):
        (arg,) = ctx.saved
        shape, kh, kw, sh, sw, ph, pw, dtype = ctx.geometry
        grad_windows = np.zeros(g.shape + (kh, kw), dtype=dtype)
        flat = grad_windows.reshape(g.shape + (kh * kw,))
        np.put_along_axis(flat, arg[..., None], g[..., None], axis=-1)
        return _scatter_windows(grad_windows, shape, kh, kw, sh, sw, ph, pw, dtype)


class AvgPool2d(Function):
    """y = mean over each window (zero padding counted, PyTorch's default);  ∂L/∂x = g / (kh·kw) per window."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0):
        (kh, kw) = _pair(kernel_size)
        (sh, sw) = _pair(stride if stride is not None else kernel_size)
        (ph, pw) = _pair(padding)
        win = _windows(_pad(x, ph, pw), kh, kw, sh, sw)
        ctx.geometry = (x.shape, kh, kw, sh, sw, ph, pw, x.dtype)
        return win.mean(axis=(-2, -1))

    @staticmethod
    def backward(ctx, g):
        shape, kh, kw, sh, sw, ph, pw, dtype = ctx.geometry
        share = np.broadcast_to((g / (kh * kw))[..., None, None], g.shape + (kh, kw))
        return _scatter_windows(share, shape, kh, kw, sh, sw, ph, pw, dtype)


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins: [floor(i·size/out), ceil((i+1)·size/out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    """y = mean of x over each of PyTorch's adaptive bins (output (1, 1): the global average pool);
    ∂L/∂x = g / |bin| to every element of the bin.
    """

    @staticmethod
    def forward(ctx, x, output_size):
        oh, ow = _pair(output_size)
        n, c, h, w = x.shape
        ctx.geometry = (x.shape, x.dtype, _bins(h, oh), _bins(w, ow))
        if (oh, ow) == (1, 1):
            return x.mean(axis=(2, 3), keepdims=True)
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        for i, (h0, h1) in enumerate(ctx.geometry[2]):
            for j, (w0, w1) in enumerate(ctx.geometry[3]):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y

    @staticmethod
    def backward(ctx, g):
        shape, dtype, hbins, wbins = ctx.geometry
        if len(hbins) == 1 and len(wbins) == 1:
            return np.broadcast_to(g / (shape[2] * shape[3]), shape).astype(dtype)
        gx = np.zeros(shape, dtype=dtype)
        for i, (h0, h1) in enumerate(hbins):
            for j, (w0, w1) in enumerate(wbins):
                gx[:, :, h0:h1, w0:w1] += (g[:, :, i, j] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
        return gx
