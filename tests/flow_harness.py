"""One harness every flow's test calls (the normflows pattern): invertibility and log|det| vs autograd."""

from __future__ import annotations

import torch
from torch import Tensor


def jacobian_log_det(layer, x: Tensor, component: int) -> Tensor:
    """log|det dz/dx| of one component at each point, from autograd's full Jacobian (N,)."""
    out = []
    for row in x:

        def f(v: Tensor) -> Tensor:
            z, _ = layer(v[None, :])
            return z[component, 0] if z.dim() == 3 else z[0]

        jac = torch.autograd.functional.jacobian(f, row)
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def check_flow(layer, dim: int, k: int, n: int = 6, scale: float = 1.0) -> None:
    """inverse(forward(x)) == x and the layer's log|det| equals autograd's, for every component, in float64."""
    layer = layer.double().eval()
    x = scale * torch.randn(n, dim, dtype=torch.float64)
    z, log_det = layer(x)
    assert z.shape == (k, n, dim) and log_det.shape == (k, n)
    assert z.dtype == torch.float64 and log_det.dtype == torch.float64
    x_back = layer.inverse(z)
    torch.testing.assert_close(x_back, x.expand(k, n, dim), atol=1e-9, rtol=1e-9)
    for c in range(k):
        torch.testing.assert_close(
            log_det[c], jacobian_log_det(layer, x, c), atol=1e-9, rtol=1e-9
        )
