"""The XLA-abort guard of the JAX adapter: a few convolutions make XLA CPU abort the whole
process while compiling (xla_conv_aborts); conv and check_vjp_convolutions refuse them as
Unsupported, forward and VJP, before XLA sees them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
from jax import lax

from backends.base import Unsupported


def _jaxlib() -> str:
    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return "not installed"


CONVOLUTIONS = ("conv2d", "conv1d", "conv_transpose2d")
_XLA_ABORT = ("XLA aborts the whole process compiling this convolution (jaxlib {jaxlib}, CPU: "
              "'Check failed: ... Window dimensions do not match RHS shape' in the algebraic "
              "simplifier's convolution operand swap: a spatial axis with lhs_dilation == kernel "
              "size == stride + 1 and no padding is copied unchanged into the swapped "
              "convolution); {where}")


def xla_conv_aborts(lhs_shape: Sequence[int], rhs_shape: Sequence[int], dtype: Any,
                    window_strides: Sequence[int], padding: Sequence[tuple[int, int]],
                    lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
                    dimension_numbers: Any, feature_group_count: int,
                    batch_group_count: int) -> bool:
    """Whether XLA CPU's convolution operand swap (SwapConvolutionOperandsIfBeneficial) would
    rewrite this convolution into an invalid one and abort the process.

    The swap keeps a "group" axis (no padding, no window dilation, lhs_dilation == kernel
    size, stride == kernel size - 1) as it is while exchanging input and kernel, which is
    invalid when that axis's input and kernel sizes differ; it swaps when the product of the
    other axes' kernel sizes exceeds that of their input sizes. XLA CPU keeps grouped
    convolutions in float32, float16 and bfloat16 away from the swap, and expands them
    (so they reach it) in float64; measured on jaxlib 0.10.2."""
    if (feature_group_count > 1 or batch_group_count > 1) and jnp.dtype(dtype) != jnp.float64:
        return False
    dn = lax.conv_dimension_numbers(tuple(lhs_shape), tuple(rhs_shape), dimension_numbers)
    kernel_product = swapped_product = 1
    bad_group_axis = False
    for i, ((lo, hi), s, bd, wd) in enumerate(zip(padding, window_strides, lhs_dilation,
                                                   rhs_dilation, strict=True)):
        k = rhs_shape[dn.rhs_spec[2 + i]]
        n = lhs_shape[dn.lhs_spec[2 + i]]
        plain = lo == 0 and hi == 0 and wd == 1
        if plain and bd == k and s == k - 1:
            bad_group_axis |= n != k
            continue
        if plain and k == n and bd == 1 and s == 1:
            continue
        kernel_product *= k
        swapped_product *= k if (n == 1 and s == 1 and wd == 1 and lo == hi == k - 1) else n
    return bad_group_axis and kernel_product > swapped_product


def conv(x: jax.Array, k: jax.Array, *, window_strides: Sequence[int],
         padding: str | Sequence[tuple[int, int]], dimension_numbers: Any,
         feature_group_count: int, lhs_dilation: Sequence[int] | None = None,
         rhs_dilation: Sequence[int] | None = None) -> jax.Array:
    """lax.conv_general_dilated, refused (Unsupported) where XLA would abort the process."""
    nd = x.ndim - 2
    lhs_d = tuple(lhs_dilation or (1,) * nd)
    rhs_d = tuple(rhs_dilation or (1,) * nd)
    pads = padding
    if isinstance(padding, str):
        dn = lax.conv_dimension_numbers(x.shape, k.shape, dimension_numbers)
        spatial = [x.shape[d] for d in dn.lhs_spec[2:]]
        window = [(k.shape[d] - 1) * r + 1 for d, r in zip(dn.rhs_spec[2:], rhs_d, strict=True)]
        pads = lax.padtype_to_pads(spatial, window, window_strides, padding)
    if xla_conv_aborts(x.shape, k.shape, x.dtype, window_strides, pads, lhs_d, rhs_d,
                       dimension_numbers, feature_group_count, 1):
        raise Unsupported(_XLA_ABORT.format(jaxlib=_jaxlib(), where="forward"))
    return lax.conv_general_dilated(x, k, window_strides, padding, lhs_d, rhs_d,
                                    dimension_numbers, feature_group_count)


def _jaxpr_convolutions(jaxpr: Any) -> Iterator[Any]:
    """Every conv_general_dilated equation in a jaxpr and in the jaxprs its equations hold."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            yield eqn
        for value in eqn.params.values():
            for v in value if isinstance(value, tuple | list) else (value,):
                if isinstance(v, jax_core.ClosedJaxpr):
                    yield from _jaxpr_convolutions(v.jaxpr)
                elif isinstance(v, jax_core.Jaxpr):
                    yield from _jaxpr_convolutions(v)


def check_vjp_convolutions(fn: Callable[..., Any], name: str, primals: Sequence[Any],
                           kwargs: dict[str, Any]) -> None:
    """Raise Unsupported when a convolution in the VJP of ``fn`` (traced, not compiled) would
    abort the process in XLA (xla_conv_aborts). None primals are held fixed."""
    present = [i for i, p in enumerate(primals) if p is not None]

    def pullback(*arrays):
        def f(*a):
            full = list(primals)
            for i, v in zip(present, a, strict=True):
                full[i] = v
            return fn(*full, **kwargs)

        out, vjp_fn = jax.vjp(f, *arrays)
        return vjp_fn(jnp.ones_like(out))

    jaxpr = jax.make_jaxpr(pullback)(*(primals[i] for i in present))
    for eqn in _jaxpr_convolutions(jaxpr.jaxpr):
        lhs, rhs = (v.aval for v in eqn.invars[:2])
        p = eqn.params
        if xla_conv_aborts(lhs.shape, rhs.shape, lhs.dtype, p["window_strides"], p["padding"],
                           p["lhs_dilation"], p["rhs_dilation"], p["dimension_numbers"],
                           p["feature_group_count"], p["batch_group_count"]):
            raise Unsupported(_XLA_ABORT.format(jaxlib=_jaxlib(),
                                                where=f"in the VJP of {name}"))
