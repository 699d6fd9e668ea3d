"""``FusedRecurrence``'s loops as two Triton kernels (CUDA): the whole sequence in one launch.

Each program owns ``BLOCK_B`` rows of the batch and walks every step with their state in
registers: per step three small products ``h @ W_hh^T`` (one per gate block, ``tl.dot``
in full float32) and the gates, candidate and update, with nothing in between written to
memory but what the backward reads. The backward walks back the same way, carrying ``dh``,
and writes the pre-activation gradients; ``FusedRecurrence`` turns them into weight
gradients with one product per block over all steps, as for the other loops (the bias sums
are torch reductions here).

The hidden size is padded to a power of two ``HP`` (>= 16, what ``tl.dot`` takes); the
padding lanes load zeros and stay zero. Float32 only. On CPU tensors the kernels run only
under Triton's interpreter (``TRITON_INTERPRET=1`` set before this module is imported),
which is how CI checks them; it is slow and only for tests.

Block sizes are chosen without a GPU to time on, from what ptxas reports for sm_90 (see
``tests/triton_compile.py``): with 16 rows per program and 16 warps both kernels fit in
42-80 registers with no spills up to H = 64 (4 or 8 warps spill or take all 255), so two
programs share an SM and batch 4096 (256 programs) is one wave on an H100/H200.
"""

from __future__ import annotations

import torch

from . import switches

try:
    import triton
    import triton.language as tl

    _import_error = None
except Exception as error:  # noqa: BLE001 - absent (CPU-only installs may lack it) or broken: the other loops run
    triton, _import_error = None, error

BLOCK_B = 16
NUM_WARPS = 16
# Above 64 (padded to 128) the backward needs about 300 KB of shared memory: more than an SM has.
MAX_HIDDEN = 64


def importable() -> bool:
    return triton is not None and not switches.triton_off()


def import_failure() -> str:
    """Why ``importable()`` is False ("" where it is True)."""
    if triton is None:
        return f"triton did not import ({_import_error})"
    return "DIEN_CORE_TRITON=0" if not importable() else ""


def interpreted() -> bool:
    """Whether Triton's interpreter runs the loops (on CPU tensors; ``switches.py``)."""
    return switches.triton_interpreted()


def check_device(device: torch.device, kind: str) -> None:
    """A ValueError where the Triton loops cannot take tensors on ``device`` (a model planned for another device)."""
    if device.type != "cuda" and not interpreted():
        raise ValueError(f"this {kind} was planned for the Triton loops (CUDA), got {device.type} tensors; "
                         "build the model for this device (bench.models.build_model(..., device=...))")  # fmt: skip


if triton is not None:

    @triton.jit
    def _tanh(x):
        return 2 * tl.sigmoid(2 * x) - 1

    @triton.jit
    def _weight_block(w_hh, block, H, HP: tl.constexpr, TRANSPOSED: tl.constexpr):
        """``(HP, HP)`` tile of gate block ``block`` of ``w_hh (G*H, H)``, zero outside ``H``:
        ``W^T`` (for ``h @ W^T``) when ``TRANSPOSED``, else ``W`` (for ``dgh @ W``)."""
        i = tl.arange(0, HP)[:, None]
        j = tl.arange(0, HP)[None, :]
        inside = (i < H) & (j < H)
        if TRANSPOSED:
            return tl.load(w_hh + (block * H + j) * H + i, mask=inside, other=0.0)
        return tl.load(w_hh + (block * H + i) * H + j, mask=inside, other=0.0)

    @triton.jit
    def _row_tile(B, H, G: tl.constexpr, BLOCK_B: tl.constexpr, HP: tl.constexpr):
        """This program's rows and, inside one step of each (T, B, width) tensor, the offsets of
        its (BLOCK_B, HP) tile for widths ``G * H`` (gi, dgi), ``H`` and ``(G - 1) * H`` (gates)."""
        rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        cols = tl.arange(0, HP)
        inside = (rows < B)[:, None] & (cols < H)[None, :]
        at_g = rows[:, None] * (G * H) + cols[None, :]
        at_h = rows[:, None] * H + cols[None, :]
        at_gate = rows[:, None] * ((G - 1) * H) + cols[None, :]
        return rows, cols, inside, at_g, at_h, at_gate

    @triton.jit
    def _forward_kernel(
        gi, c0, c1, w_hh, b_ih, b_hh, hs, gates, n_all, gh_n, T, B, H,
        HAS_Z: tl.constexpr, SAVE: tl.constexpr, BLOCK_B: tl.constexpr, HP: tl.constexpr,
    ):  # fmt: skip
        G: tl.constexpr = 3 if HAS_Z else 2
        rows, cols, inside, at_gi, at_h, at_gate = _row_tile(B, H, G, BLOCK_B, HP)
        in_b, in_h = rows < B, cols < H
        w_r = _weight_block(w_hh, 0, H, HP, True)
        w_n = _weight_block(w_hh, G - 1, H, HP, True)
        # b_ih and b_hh add up for r and z; for n, b_hh is inside r * (.) and b_ih outside it
        b_r = (tl.load(b_ih + cols, mask=in_h, other=0.0) + tl.load(b_hh + cols, mask=in_h, other=0.0))[None, :]
        b_n = tl.load(b_hh + (G - 1) * H + cols, mask=in_h, other=0.0)[None, :]
        b_in = tl.load(b_ih + (G - 1) * H + cols, mask=in_h, other=0.0)[None, :]
        if HAS_Z:
            w_z = _weight_block(w_hh, 1, H, HP, True)
            b_z = (tl.load(b_ih + H + cols, mask=in_h, other=0.0) + tl.load(b_hh + H + cols, mask=in_h, other=0.0))[None, :]
        h = tl.zeros((BLOCK_B, HP), dtype=tl.float32)
        for _ in range(T):  # the pointers advance one step each time
            gh_r = tl.dot(h, w_r, input_precision="ieee") + b_r
            ghn = tl.dot(h, w_n, input_precision="ieee") + b_n
            r = tl.sigmoid(tl.load(gi + at_gi, mask=inside, other=0.0) + gh_r)
            n = _tanh(tl.load(gi + at_gi + (G - 1) * H, mask=inside, other=0.0) + b_in + r * ghn)
            u = tl.load(c0 + rows, mask=in_b, other=0.0)[:, None]
            if HAS_Z:
                gh_z = tl.dot(h, w_z, input_precision="ieee") + b_z
                z = tl.sigmoid(tl.load(gi + at_gi + H, mask=inside, other=0.0) + gh_z)
                u = u + tl.load(c1 + rows, mask=in_b, other=0.0)[:, None] * z
                c1 += B
            h = h + u * (n - h)
            tl.store(hs + at_h, h, mask=inside)
            if SAVE:
                tl.store(gates + at_gate, r, mask=inside)
                if HAS_Z:
                    tl.store(gates + at_gate + H, z, mask=inside)
                tl.store(n_all + at_h, n, mask=inside)
                tl.store(gh_n + at_h, ghn, mask=inside)
                gates += B * (G - 1) * H
                n_all += B * H
                gh_n += B * H
            gi += B * G * H
            c0 += B
            hs += B * H

    @triton.jit
    def _backward_kernel(
        d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh, dgi, dgh_n, dc0, dc1, T, B, H,
        HAS_Z: tl.constexpr, BLOCK_B: tl.constexpr, HP: tl.constexpr,
    ):  # fmt: skip
        G: tl.constexpr = 3 if HAS_Z else 2
        rows, cols, inside, at_g, at_h, at_gate = _row_tile(B, H, G, BLOCK_B, HP)
        in_b = rows < B
        w_r = _weight_block(w_hh, 0, H, HP, False)
        w_n = _weight_block(w_hh, G - 1, H, HP, False)
        if HAS_Z:
            w_z = _weight_block(w_hh, 1, H, HP, False)
        dh = tl.zeros((BLOCK_B, HP), dtype=tl.float32)
        for i in range(T):  # step t = T - 1 - i; a step's offset is t * B * width
            t = T - 1 - i
            dh += tl.load(d_hs + t * B * H + at_h, mask=inside, other=0.0)
            r = tl.load(gates + t * B * (G - 1) * H + at_gate, mask=inside, other=0.0)
            n = tl.load(n_all + t * B * H + at_h, mask=inside, other=0.0)
            ghn = tl.load(gh_n + t * B * H + at_h, mask=inside, other=0.0)
            has_prev = (tl.zeros_like(rows) + t) > 0  # (BLOCK_B,): h_{-1} = 0
            h_prev = tl.load(hs + (t - 1) * B * H + at_h, mask=inside & has_prev[:, None], other=0.0)
            u = tl.load(c0 + t * B + rows, mask=in_b, other=0.0)[:, None]
            if HAS_Z:
                z = tl.load(gates + t * B * (G - 1) * H + at_gate + H, mask=inside, other=0.0)
                k1 = tl.load(c1 + t * B + rows, mask=in_b, other=0.0)[:, None]
                u = u + k1 * z
            jump = n - h_prev  # dh_t / du_t
            a = u * (1 - n * n)  # dh_t / d(pre-activation of n)
            d_r = dh * a * ghn * r * (1 - r)
            d_n = dh * a * r
            du = dh * jump
            step_g = t * B * G * H
            tl.store(dgi + step_g + at_g, d_r, mask=inside)  # dgh's r and z blocks are dgi's
            tl.store(dgh_n + t * B * H + at_h, d_n, mask=inside)
            tl.store(dgi + step_g + at_g + (G - 1) * H, dh * a, mask=inside)
            tl.store(dc0 + t * B + rows, tl.sum(du, axis=1), mask=in_b)
            back = tl.dot(d_r, w_r, input_precision="ieee") + tl.dot(d_n, w_n, input_precision="ieee")
            if HAS_Z:
                d_z = du * k1 * z * (1 - z)
                tl.store(dgi + step_g + at_g + H, d_z, mask=inside)
                tl.store(dc1 + t * B + rows, tl.sum(du * z, axis=1), mask=in_b)
                back += tl.dot(d_z, w_z, input_precision="ieee")
            dh = dh * (1 - u) + back


def _padded(H: int) -> int:
    return max(16, triton.next_power_of_2(H))


def _check_size(T: int, B: int, GH: int) -> None:
    # the backward's step offsets t * B * width are 32-bit integers in the kernel
    if T * B * GH >= 2**31:
        raise ValueError(f"the triton loops take T * B * {GH} < 2**31 elements, got T={T}, B={B}; split the batch")


class TritonLoops:
    """``PythonLoops``' contract (see ``fused.py``) in two Triton kernels; float32, contiguous
    copies made here where the inputs are views (``c0, c1`` come transposed from the mask)."""

    @staticmethod
    def forward_loop(gi, c0, c1, w_hh, b_ih, b_hh, save=True, rows=None):
        if rows is not None:  # row b reads gi[:, rows[b]]: gathered here (on the GPU a copy is cheap)
            gi = gi.index_select(1, rows)
        T, B, GH = gi.shape
        H = w_hh.shape[1]
        _check_size(T, B, GH)
        hs = gi.new_empty(T, B, H)
        keep = (T, B) if save else (0, 0)
        gates, n_all, gh_n = gi.new_empty(*keep, GH - H), gi.new_empty(*keep, H), gi.new_empty(*keep, H)
        c0 = c0.contiguous()
        c1 = c1.contiguous() if c1 is not None else c0  # not read without z
        grid = (triton.cdiv(B, BLOCK_B),)
        _forward_kernel[grid](
            gi.contiguous(), c0, c1, w_hh.contiguous(), b_ih.contiguous(), b_hh.contiguous(), hs, gates, n_all, gh_n, T, B, H,
            HAS_Z=GH == 3 * H, SAVE=save, BLOCK_B=BLOCK_B, HP=_padded(H), num_warps=NUM_WARPS,
        )  # fmt: skip
        return hs, gates, n_all, gh_n

    @staticmethod
    def backward(d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh):
        T, B, H = hs.shape
        GH = w_hh.shape[0]
        has_z = c1 is not None
        dgi, dgh_n = hs.new_empty(T, B, GH), hs.new_empty(T, B, H)
        dc0 = hs.new_empty(T, B, 1)
        dc1 = hs.new_empty(T, B, 1) if has_z else dc0
        c0 = c0.contiguous()
        grid = (triton.cdiv(B, BLOCK_B),)
        _backward_kernel[grid](
            d_hs.contiguous(), gates, n_all, gh_n, hs, c0, c1.contiguous() if has_z else c0, w_hh.contiguous(),
            dgi, dgh_n, dc0, dc1, T, B, H,
            HAS_Z=has_z, BLOCK_B=BLOCK_B, HP=_padded(H), num_warps=NUM_WARPS,
        )  # fmt: skip
        split = GH - H
        d_b_ih = dgi.sum(dim=(0, 1))
        d_b_hh = torch.cat([d_b_ih[:split], dgh_n.sum(dim=(0, 1))])
        return dgi, dgh_n, dc0, dc1 if has_z else None, d_b_ih, d_b_hh
