"""Optional cross-check with PyTorch (``pip install torch==2.13.0``; skipped without it).

RNN, GRU and LSTM must compute what ``nn.RNN``/``nn.GRU``/``nn.LSTM`` compute, once PyTorch's
``*_l0`` parameters are loaded by renaming: outputs, final states and every gradient of full BPTT.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn.registry import make_inputs

from .helpers import assert_close, assert_state_close

torch = pytest.importorskip("torch")

CELLS = [
    ("rnn-tanh", lambda I, H: torch.nn.RNN(I, H, nonlinearity="tanh"),
     lambda I, H, **kw: fastrnn.RNN(I, H, "tanh", **kw)),
    ("rnn-relu", lambda I, H: torch.nn.RNN(I, H, nonlinearity="relu"),
     lambda I, H, **kw: fastrnn.RNN(I, H, "relu", **kw)),
    ("gru", torch.nn.GRU, fastrnn.GRU),
    ("lstm", torch.nn.LSTM, fastrnn.LSTM),
]


def _torch_state(state, dtype):
    if isinstance(state, tuple):
        return tuple(torch.tensor(s, dtype=dtype).unsqueeze(0).requires_grad_() for s in state)
    return torch.tensor(state, dtype=dtype).unsqueeze(0).requires_grad_()


@pytest.mark.parametrize("name, make_torch, make_ours", CELLS, ids=[c[0] for c in CELLS])
def test_matches_pytorch_after_renaming(name, make_torch, make_ours, dtype, backend):
    T, B, I, H = 7, 3, 4, 5
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    theirs = make_torch(I, H).to(torch_dtype)
    ours = make_ours(I, H, dtype=dtype, backend=backend)
    for param_name, value in theirs.state_dict().items():
        ours.params[param_name.removesuffix("_l0")][...] = value.numpy()

    inputs = make_inputs(ours, T, B, seed=1)
    x, state, dy, dstate = (inputs[k] for k in ("x", "state", "dy", "dstate"))
    y, final, tape = ours.forward(x, state)
    grads, dx, dstate0 = ours.backward(tape, dy, dstate)

    tx = torch.tensor(x, dtype=torch_dtype, requires_grad=True)
    tstate = _torch_state(state, torch_dtype)
    ty, tfinal = theirs(tx, tstate)
    loss = (ty * torch.tensor(dy)).sum()
    finals = tfinal if isinstance(tfinal, tuple) else (tfinal,)
    dfinals = dstate if isinstance(dstate, tuple) else (dstate,)
    for f, d in zip(finals, dfinals):
        loss = loss + (f[0] * torch.tensor(d)).sum()
    loss.backward()

    what = f"{name} {dtype} {backend} vs torch {torch.__version__}"
    assert_close(y, ty.detach().numpy(), dtype, f"{what}: y")
    as_ours = tuple(f[0].detach().numpy() for f in finals)
    assert_state_close(final, as_ours if isinstance(final, tuple) else as_ours[0], dtype, f"{what}: final state")
    for param_name, param in theirs.named_parameters():
        assert_close(grads[param_name.removesuffix("_l0")], param.grad.numpy(), dtype, f"{what}: d{param_name}")
    assert_close(dx, tx.grad.numpy(), dtype, f"{what}: dx")
    tstates = tstate if isinstance(tstate, tuple) else (tstate,)
    ours0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    for i, (mine, theirs_state) in enumerate(zip(ours0, tstates)):
        assert_close(mine, theirs_state.grad[0].numpy(), dtype, f"{what}: dstate[{i}]")


def _rename(torch_name):
    """``weight_ih_l1_reverse`` -> ``1.backward.weight_ih``; ``bias_hh_l0`` -> ``0.forward.bias_hh``."""
    base, layer = torch_name.rsplit("_l", 1)
    direction = "backward" if layer.endswith("_reverse") else "forward"
    return f"{layer.removesuffix('_reverse')}.{direction}.{base}"


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_two_layer_bidirectional_stack_matches_pytorch(kind, backend):
    """nn.GRU/nn.LSTM(num_layers=2, bidirectional=True) is a DilatedRNN of two Bidirectional layers
    with dilations 1, 1: outputs and every parameter and input gradient (zero initial state)."""
    T, B, I, H = 6, 2, 3, 4
    torch.manual_seed(0)
    cls = {"gru": (torch.nn.GRU, fastrnn.GRU), "lstm": (torch.nn.LSTM, fastrnn.LSTM)}[kind]
    theirs = cls[0](I, H, num_layers=2, bidirectional=True).double()
    layers = [fastrnn.Bidirectional(cls[1](n, H, backend=backend), cls[1](n, H, backend=backend)) for n in (I, 2 * H)]
    ours = fastrnn.DilatedRNN(layers, [1, 1])
    for name, value in theirs.state_dict().items():
        ours.params[_rename(name)][...] = value.numpy()

    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, 2 * H))
    y, _, tape = ours.forward(x)
    grads, dx, _ = ours.backward(tape, dy)

    tx = torch.tensor(x, requires_grad=True)
    ty, _ = theirs(tx)
    (ty * torch.tensor(dy)).sum().backward()
    what = f"{kind} 2 layers bidirectional {backend} vs torch {torch.__version__}"
    assert_close(y, ty.detach().numpy(), "float64", f"{what}: y")
    for name, param in theirs.named_parameters():
        assert_close(grads[_rename(name)], param.grad.numpy(), "float64", f"{what}: d{name}")
    assert_close(dx, tx.grad.numpy(), "float64", f"{what}: dx")
