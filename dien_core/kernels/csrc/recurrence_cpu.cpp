// FusedRecurrence's forward loop and backward (dien_core/kernels/fused.py) in C++.
//
// Same equations and contract as ``PythonLoops`` there. The forward splits the rows between
// the threads once: each thread runs every step for its rows, one matrix product (small_product
// in kernels.h: the rows' outputs accumulated in registers, no library call per step) and one
// pass doing everything else: gates,
// candidate, state update, and only the saved tensors the backward reads (none when no
// backward is coming). A row's steps read only that row, so the threads meet once per call,
// not twice per step. The backward's steps are one product over the whole batch (on ATen's
// threads) and one pass over the rows (split between threads at large batches). Everything is
// time-major ((T, B, .)): a step's rows are one contiguous slice. (Batch-major inputs and
// outputs, to spare the layers' transposed copies, were tried: the strided rows cost more in
// the loops than the copies.) The loops over the H units are written for the compiler to
// vectorise (restrict pointers, declared SIMD loops and reductions, a branch-free exp, and
// -fno-trapping-math in cpp.py's flags): float32 and bfloat16 compute in float, float64 (the
// gradient checks) in double with the library's exp.
#include <torch/extension.h>

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <vector>

#include "kernels.h"

namespace dien_core {

// Fewest rows a thread takes in the forward: each thread runs every step for its own rows
// (its own product per step, on its own), so the threads meet once per call instead of twice
// per step. Below this many rows a second thread costs more than it saves.
constexpr int64_t kMinRowsPerThread = 16;
// Rows per task of a backward step's elementwise pass: batches up to this size stay on one
// thread (waking a second one costs more than their pass).
constexpr int64_t kRowsPerTask = 256;

template <typename scalar_t, bool HAS_Z>
void forward_steps(const at::Tensor& gi, const at::Tensor& c0, const at::Tensor& c1, const at::Tensor& w_hh, const at::Tensor& b_ih,
                   const at::Tensor& b_hh, bool save, const int64_t* rows_p, at::Tensor& hs, at::Tensor& gates, at::Tensor& n_all,
                   at::Tensor& gh_n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t T = gi.size(0), B = hs.size(1), GH = gi.size(2), H = w_hh.size(1), split = GH - H;
  int64_t GHp = 0;  // W_hh^T, padded for small_product
  const std::vector<acc_t> w_t = padded_transpose<scalar_t, acc_t>(w_hh, GHp);
  const acc_t* w_t_p = w_t.data();
  // bias[j]: what is added to gi + gh for the r and z blocks (b_ih + b_hh), then b_hh's n block
  // (inside r * (.)) and b_ih's (outside it).
  const at::Tensor bi = b_ih.contiguous(), bh = b_hh.contiguous();
  std::vector<acc_t> bias(GH + H);
  for (int64_t j = 0; j < GH; ++j) bias[j] = acc_t(bh.data_ptr<scalar_t>()[j]) + (j < split ? acc_t(bi.data_ptr<scalar_t>()[j]) : acc_t(0));
  for (int64_t j = 0; j < H; ++j) bias[GH + j] = acc_t(bi.data_ptr<scalar_t>()[split + j]);
  const acc_t* __restrict__ bias_p = bias.data();
  const scalar_t* gi_p = gi.data_ptr<scalar_t>();
  // gi_b = 0: one request's projection, broadcast over its candidates; with rows_p, row b reads gi's row rows_p[b]
  const int64_t gi_t = gi.stride(0), gi_b = gi.stride(1);
  const scalar_t* c0_p = c0.data_ptr<scalar_t>();
  const scalar_t* c1_p = HAS_Z ? c1.data_ptr<scalar_t>() : nullptr;
  scalar_t* hs_p = hs.data_ptr<scalar_t>();
  // One chunk of rows per thread, each through all T steps (a row's steps depend only on the row).
  const int64_t chunks = std::clamp<int64_t>(B / kMinRowsPerThread, 1, std::max<int64_t>(1, at::get_num_threads()));
  const int64_t grain = std::max<int64_t>(1, (B + chunks - 1) / chunks);  // parallel_for makes ceil(B / grain) = chunks
  at::parallel_for(0, B, grain, [&](int64_t b_begin, int64_t b_end) {
    const int64_t rows = b_end - b_begin;
    const std::vector<scalar_t> h0(rows * H, scalar_t(0));
    std::vector<acc_t> gh_buf(rows * GHp);  // W_hh h of one step, in acc_t (bias added below)
    std::vector<acc_t> gate_buf(split);
    acc_t* __restrict__ gate = gate_buf.data();
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* __restrict__ h_prev_rows = t == 0 ? h0.data() : hs_p + ((t - 1) * B + b_begin) * H;
      small_product<scalar_t, acc_t>(h_prev_rows, rows, H, H, w_t_p, GHp, gh_buf.data());
      const acc_t* __restrict__ gh_rows = gh_buf.data();
      for (int64_t b = b_begin; b < b_end; ++b) {
        const int64_t row = t * B + b;
        const scalar_t* __restrict__ x = gi_p + t * gi_t + (rows_p ? rows_p[b] : b) * gi_b;
        const acc_t* __restrict__ gh = gh_rows + (b - b_begin) * GHp;
        const scalar_t* __restrict__ h_prev = h_prev_rows + (b - b_begin) * H;
#pragma omp simd
        for (int64_t j = 0; j < split; ++j) gate[j] = sigmoid_of(acc_t(x[j]) + gh[j] + bias_p[j]);
        const acc_t u0 = c0_p[row];
        const acc_t u1 = HAS_Z ? acc_t(c1_p[row]) : acc_t(0);
        scalar_t* __restrict__ h_out = hs_p + row * H;
        scalar_t* __restrict__ n_out = save ? n_all.data_ptr<scalar_t>() + row * H : nullptr;
        scalar_t* __restrict__ ghn_out = save ? gh_n.data_ptr<scalar_t>() + row * H : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const acc_t ghn = gh[split + j] + bias_p[split + j];
          const acc_t n = tanh_of(acc_t(x[split + j]) + bias_p[GH + j] + gate[j] * ghn);
          const acc_t u = HAS_Z ? u0 + u1 * gate[H + j] : u0;
          const acc_t hp = h_prev[j];
          h_out[j] = scalar_t(hp + u * (n - hp));
          if (save) {
            n_out[j] = scalar_t(n);
            ghn_out[j] = scalar_t(ghn);
          }
        }
        if (save) {
          scalar_t* __restrict__ gate_out = gates.data_ptr<scalar_t>() + row * split;
#pragma omp simd
          for (int64_t j = 0; j < split; ++j) gate_out[j] = scalar_t(gate[j]);
        }
      }
    }
  });
}

// forward: gi (T, B, G*H) without b_ih, c0 (T, B, 1), c1 (T, B, 1) or undefined, w_hh (G*H, H), b_ih, b_hh (G*H), save,
// rows (B,) int64 or undefined -> hs (T, B, H), and when save: gates (T, B, (G-1)*H), n_all (T, B, H), gh_n (T, B, H) (else
// empty). With rows, gi is (T, R, G*H) and row b reads gi[:, rows[b]]: the serving path's stacked requests, each request's
// input projection read by its candidates in place (no (T, B, G*H) gather).
std::vector<at::Tensor> forward_loop(const at::Tensor& gi_any, const at::Tensor& c0_any, const c10::optional<at::Tensor>& c1_opt,
                                     const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh, bool save,
                                     const c10::optional<at::Tensor>& rows_opt) {
  // gi's rows are read through its strides when each row is contiguous (a broadcast over B, as
  // the serving path gives, is not copied); else it is made contiguous.
  const at::Tensor gi = gi_any.stride(2) == 1 ? gi_any : gi_any.contiguous(), c0 = c0_any.contiguous();
  const bool has_rows = rows_opt.has_value() && rows_opt->defined();
  const at::Tensor rows = has_rows ? rows_opt->contiguous() : at::Tensor();
  const int64_t T = gi.size(0), B = has_rows ? rows.numel() : gi.size(1), GH = gi.size(2), H = w_hh.size(1), split = GH - H;
  if (has_rows) {
    TORCH_CHECK(rows.scalar_type() == at::kLong && rows.dim() == 1 && rows.is_cpu(), "forward_loop: rows (B,) int64 on the CPU");
    TORCH_CHECK(indices_within(rows, gi.size(1)), "forward_loop: rows out of 0..R-1 (gi's second dimension)");
  }
  const bool has_z = c1_opt.has_value() && c1_opt->defined();
  const at::Tensor c1 = has_z ? c1_opt->contiguous() : at::Tensor();
  TORCH_CHECK(c0.dim() == 3 && c0.size(0) == T && c0.size(1) == B && c0.size(2) == 1, "forward_loop: c0 (T, B, 1) for B rows");
  TORCH_CHECK(!has_z || (c1.dim() == 3 && c1.size(0) == T && c1.size(1) == B && c1.size(2) == 1),
              "forward_loop: c1 (T, B, 1) for B rows");
  TORCH_CHECK(split == (has_z ? 2 * H : H), "gate blocks do not match c1");
  auto hs = at::empty({T, B, H}, gi.options());
  auto gates = save ? at::empty({T, B, split}, gi.options()) : at::empty({0}, gi.options());
  auto n_all = save ? at::empty({T, B, H}, gi.options()) : at::empty({0}, gi.options());
  auto gh_n = save ? at::empty({T, B, H}, gi.options()) : at::empty({0}, gi.options());
  const int64_t* rows_p = has_rows ? rows.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, gi.scalar_type(), "forward_loop", [&] {
    if (has_z)
      forward_steps<scalar_t, true>(gi, c0, c1, w_hh, b_ih, b_hh, save, rows_p, hs, gates, n_all, gh_n);
    else
      forward_steps<scalar_t, false>(gi, c0, c1, w_hh, b_ih, b_hh, save, rows_p, hs, gates, n_all, gh_n);
  });
  return {hs, gates, n_all, gh_n};
}

template <typename scalar_t, bool HAS_Z>
void backward_steps(const at::Tensor& d_hs, const at::Tensor& gates, const at::Tensor& n_all, const at::Tensor& gh_n,
                    const at::Tensor& hs, const at::Tensor& c0, const at::Tensor& c1, const at::Tensor& w_hh, at::Tensor& dgi,
                    at::Tensor& dgh_n, at::Tensor& dc0, at::Tensor& dc1, at::Tensor& d_b_ih, at::Tensor& d_b_hh) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t T = hs.size(0), B = hs.size(1), H = hs.size(2), GH = dgi.size(2), split = GH - H;
  // dL/dh_{t-1} = carried + through_w: the direct path dh_t * (1 - u_t) plus the path
  // through W_hh, dgh_t @ W_hh; kept apart so the product needs no copy of the addend.
  at::Tensor carried = at::zeros({B, H}, d_hs.options());
  at::Tensor through_w = at::zeros({B, H}, d_hs.options());
  // dgh of one step, for that product: its r and z blocks are dgi's, its n block is kept in dgh_n.
  at::Tensor dgh_step = at::empty({B, GH}, d_hs.options());
  scalar_t* carried_p = carried.data_ptr<scalar_t>();
  const scalar_t* through_w_p = through_w.data_ptr<scalar_t>();
  scalar_t* dgh_step_p = dgh_step.data_ptr<scalar_t>();
  const std::vector<scalar_t> zero_row(H, scalar_t(0));  // h_{-1}
  const scalar_t* d_hs_p = d_hs.data_ptr<scalar_t>();
  const scalar_t* gates_p = gates.data_ptr<scalar_t>();
  const scalar_t* n_p = n_all.data_ptr<scalar_t>();
  const scalar_t* gh_n_p = gh_n.data_ptr<scalar_t>();
  const scalar_t* hs_p = hs.data_ptr<scalar_t>();
  const scalar_t* c0_p = c0.data_ptr<scalar_t>();
  const scalar_t* c1_p = HAS_Z ? c1.data_ptr<scalar_t>() : nullptr;
  scalar_t* dgi_p = dgi.data_ptr<scalar_t>();
  scalar_t* dgh_n_p = dgh_n.data_ptr<scalar_t>();
  scalar_t* dc0_p = dc0.data_ptr<scalar_t>();
  scalar_t* dc1_p = HAS_Z ? dc1.data_ptr<scalar_t>() : nullptr;
  // The biases' gradients are column sums of dgi and of dgh; each thread sums its rows of a step
  // (columns: dgi's G*H, then dgh's n block), then adds them to its totals in double.
  const int64_t sums = GH + H, threads = at::get_num_threads();
  std::vector<double> totals(threads * sums, 0.0);
  for (int64_t t = T - 1; t >= 0; --t) {
    at::parallel_for(0, B, kRowsPerTask, [&](int64_t b_begin, int64_t b_end) {
    std::vector<acc_t> step_sums(sums, acc_t(0));
    acc_t* __restrict__ sum_p = step_sums.data();
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t row = t * B + b;
      const scalar_t* __restrict__ d_out = d_hs_p + row * H;
      const scalar_t* __restrict__ r = gates_p + row * split;
      const scalar_t* __restrict__ z = r + H;  // read only when HAS_Z
      const scalar_t* __restrict__ n = n_p + row * H;
      const scalar_t* __restrict__ ghn = gh_n_p + row * H;
      const scalar_t* __restrict__ h_prev = t > 0 ? hs_p + (row - B) * H : zero_row.data();
      const scalar_t* __restrict__ through = through_w_p + b * H;
      scalar_t* __restrict__ carry = carried_p + b * H;
      scalar_t* __restrict__ dgi_row = dgi_p + row * GH;
      scalar_t* __restrict__ dgh_row = dgh_step_p + b * GH;
      scalar_t* __restrict__ dghn_row = dgh_n_p + row * H;
      const acc_t u0 = c0_p[row], u1 = HAS_Z ? acc_t(c1_p[row]) : acc_t(0);
      acc_t sum_du = 0, sum_du_z = 0;
#pragma omp simd reduction(+ : sum_du, sum_du_z)
      for (int64_t j = 0; j < H; ++j) {
        const acc_t r_j = r[j];
        const acc_t z_j = HAS_Z ? acc_t(z[j]) : acc_t(0);
        const acc_t n_j = n[j];
        const acc_t u = HAS_Z ? u0 + u1 * z_j : u0;
        const acc_t dh = acc_t(carry[j]) + acc_t(through[j]) + acc_t(d_out[j]);
        const acc_t jump = n_j - acc_t(h_prev[j]);  // dh/du
        const acc_t dn = dh * u * (1 - n_j * n_j);  // dL/d(pre-activation of n)
        const acc_t dr = dn * acc_t(ghn[j]) * r_j * (1 - r_j);
        const acc_t du = dh * jump;
        sum_du += du;
        dgi_row[j] = dgh_row[j] = scalar_t(dr);
        sum_p[j] += dr;
        if (HAS_Z) {
          sum_du_z += du * z_j;
          const acc_t dz = du * u1 * z_j * (1 - z_j);
          dgi_row[H + j] = dgh_row[H + j] = scalar_t(dz);
          sum_p[H + j] += dz;
        }
        dgi_row[split + j] = scalar_t(dn);
        dgh_row[split + j] = dghn_row[j] = scalar_t(dn * r_j);
        sum_p[split + j] += dn;
        sum_p[GH + j] += dn * r_j;
        carry[j] = scalar_t(dh * (1 - u));
      }
      dc0_p[row] = scalar_t(sum_du);
      if (HAS_Z) dc1_p[row] = scalar_t(sum_du_z);
    }
    double* __restrict__ total = totals.data() + at::get_thread_num() * sums;
    for (int64_t k = 0; k < sums; ++k) total[k] += double(sum_p[k]);
    });
    at::mm_out(through_w, dgh_step, w_hh);
  }
  double* __restrict__ total = totals.data();
  for (int64_t s = 1; s < threads; ++s)
    for (int64_t k = 0; k < sums; ++k) total[k] += totals[s * sums + k];
  scalar_t* d_b_ih_p = d_b_ih.data_ptr<scalar_t>();
  scalar_t* d_b_hh_p = d_b_hh.data_ptr<scalar_t>();
  for (int64_t k = 0; k < GH; ++k) d_b_ih_p[k] = scalar_t(total[k]);
  for (int64_t k = 0; k < split; ++k) d_b_hh_p[k] = scalar_t(total[k]);
  for (int64_t k = 0; k < H; ++k) d_b_hh_p[split + k] = scalar_t(total[GH + k]);
}

// backward: d_hs (T, B, H) and the saved gates (T, B, (G-1)*H), n_all (T, B, H), gh_n (T, B, H),
// hs (T, B, H), c0 (T, B, 1), c1 (T, B, 1) or undefined, w_hh (G*H, H)
// -> dgi (T, B, G*H), dgh_n (T, B, H), dc0 (T, B, 1), dc1 (T, B, 1) or undefined, d_b_ih (G*H), d_b_hh (G*H).
std::vector<at::Tensor> backward(const at::Tensor& d_hs_any, const at::Tensor& gates_any, const at::Tensor& n_all_any,
                                 const at::Tensor& gh_n_any, const at::Tensor& hs_any, const at::Tensor& c0_any,
                                 const c10::optional<at::Tensor>& c1_opt, const at::Tensor& w_hh) {
  const at::Tensor d_hs = d_hs_any.contiguous(), gates = gates_any.contiguous(), n_all = n_all_any.contiguous();
  const at::Tensor gh_n = gh_n_any.contiguous(), hs = hs_any.contiguous(), c0 = c0_any.contiguous();
  const bool has_z = c1_opt.has_value() && c1_opt->defined();
  const at::Tensor c1 = has_z ? c1_opt->contiguous() : at::Tensor();
  const int64_t T = hs.size(0), B = hs.size(1), H = hs.size(2), GH = w_hh.size(0);
  auto dgi = at::empty({T, B, GH}, d_hs.options());
  auto dgh_n = at::empty({T, B, H}, d_hs.options());
  auto dc0 = at::empty({T, B, 1}, d_hs.options());
  auto dc1 = has_z ? at::empty({T, B, 1}, d_hs.options()) : at::Tensor();
  auto d_b_ih = at::empty({GH}, d_hs.options()), d_b_hh = at::empty({GH}, d_hs.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, d_hs.scalar_type(), "backward", [&] {
    if (has_z)
      backward_steps<scalar_t, true>(d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh, dgi, dgh_n, dc0, dc1, d_b_ih, d_b_hh);
    else
      backward_steps<scalar_t, false>(d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh, dgi, dgh_n, dc0, dc1, d_b_ih, d_b_hh);
  });
  return {dgi, dgh_n, dc0, dc1, d_b_ih, d_b_hh};
}

}  // namespace dien_core
