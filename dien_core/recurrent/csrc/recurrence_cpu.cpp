// FusedRecurrence's forward loop and backward (dien_core/recurrent/fused.py) in C++.
//
// Same equations and saved tensors as the Python loops there; only the per-step
// dispatch is gone: one matrix product per step (at::mm_out, on ATen's threads),
// the gates' sigmoid/tanh through ATen's vectorised kernels, the rest in plain
// loops over rows on one thread (waking a second one costs more than a step's loop).
#include <torch/extension.h>

#include <ATen/OpMathType.h>

namespace {

// forward: gi (T, B, G*H), c0 (T, B, 1), c1 (T, B, 1) or undefined, w_hh (G*H, H), b_hh (G*H)
// -> hs (T, B, H), gh_all (T, B, G*H), gates (T, B, (G-1)*H), n_all (T, B, H)
std::vector<at::Tensor> forward_loop(const at::Tensor& gi_any, const at::Tensor& c0_any, const c10::optional<at::Tensor>& c1_opt,
                                     const at::Tensor& w_hh, const at::Tensor& b_hh) {
  const at::Tensor gi = gi_any.contiguous(), c0 = c0_any.contiguous();
  const int64_t T = gi.size(0), B = gi.size(1), GH = gi.size(2), H = w_hh.size(1), split = GH - H;
  const bool has_z = c1_opt.has_value() && c1_opt->defined();
  const at::Tensor c1 = has_z ? c1_opt->contiguous() : at::Tensor();
  TORCH_CHECK(split == (has_z ? 2 * H : H), "gate blocks do not match c1");
  auto hs = at::empty({T, B, H}, gi.options());
  auto gh_all = at::empty({T, B, GH}, gi.options());
  auto gates = at::empty({T, B, split}, gi.options());
  auto n_all = at::empty({T, B, H}, gi.options());
  const auto h0 = at::zeros({B, H}, gi.options());
  const auto w_t = w_hh.t();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, gi.scalar_type(), "forward_loop", [&] {
    const at::Tensor b_hh_c = b_hh.contiguous();
    const scalar_t* bias = b_hh_c.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      const at::Tensor h = t == 0 ? h0 : hs[t - 1];
      at::Tensor gh_slot = gh_all[t], gate_slot = gates[t], n_slot = n_all[t];
      at::mm_out(gh_slot, h, w_t);  // the bias is added below: addmm_out would first copy it into every row
      const scalar_t* gi_t = gi.data_ptr<scalar_t>() + t * B * GH;
      scalar_t* gh_t = gh_all.data_ptr<scalar_t>() + t * B * GH;
      scalar_t* gate_t = gates.data_ptr<scalar_t>() + t * B * split;
      scalar_t* n_t = n_all.data_ptr<scalar_t>() + t * B * H;
      for (int64_t b = 0; b < B; ++b) {
        scalar_t* gh = gh_t + b * GH;
        for (int64_t j = 0; j < GH; ++j) gh[j] += bias[j];
        for (int64_t j = 0; j < split; ++j) gate_t[b * split + j] = gi_t[b * GH + j] + gh[j];
      }
      at::sigmoid_(gate_slot);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < H; ++j)
          n_t[b * H + j] = gi_t[b * GH + split + j] + gate_t[b * split + j] * gh_t[b * GH + split + j];
      at::tanh_(n_slot);
      const scalar_t* h_prev = h.data_ptr<scalar_t>();
      scalar_t* h_new = hs.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* c0_t = c0.data_ptr<scalar_t>() + t * B;
      const scalar_t* c1_t = has_z ? c1.data_ptr<scalar_t>() + t * B : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        const scalar_t u0 = c0_t[b];
        const scalar_t u1 = has_z ? c1_t[b] : scalar_t(0);
        const scalar_t* z = gate_t + b * split + H;
        for (int64_t j = 0; j < H; ++j) {
          const scalar_t u = has_z ? scalar_t(u0 + u1 * z[j]) : u0;
          const scalar_t hp = h_prev[b * H + j];
          h_new[b * H + j] = hp + u * (n_t[b * H + j] - hp);
        }
      }
    }
  });
  return {hs, gh_all, gates, n_all};
}

// backward: d_hs (T, B, H) and the saved gates (T, B, (G-1)*H), n_all (T, B, H), gh_all (T, B, G*H),
// hs (T, B, H), c0 (T, B, 1), c1 (T, B, 1) or undefined, w_hh (G*H, H)
// -> dgi (T, B, G*H), dgh (T, B, G*H), dc0 (T, B, 1), dc1 (T, B, 1) or undefined.
// Each step's gate derivatives are made inside the loop from the saved tensors (the
// Python form makes them for all steps first): one pass over memory per step.
std::vector<at::Tensor> backward(const at::Tensor& d_hs_any, const at::Tensor& gates_any, const at::Tensor& n_all_any,
                                 const at::Tensor& gh_all_any, const at::Tensor& hs_any, const at::Tensor& c0_any,
                                 const c10::optional<at::Tensor>& c1_opt, const at::Tensor& w_hh) {
  const at::Tensor d_hs = d_hs_any.contiguous(), gates = gates_any.contiguous(), n_all = n_all_any.contiguous();
  const at::Tensor gh_all = gh_all_any.contiguous(), hs = hs_any.contiguous(), c0 = c0_any.contiguous();
  const bool has_z = c1_opt.has_value() && c1_opt->defined();
  const at::Tensor c1 = has_z ? c1_opt->contiguous() : at::Tensor();
  const int64_t T = hs.size(0), B = hs.size(1), H = hs.size(2), GH = gh_all.size(2), split = GH - H;
  auto dgi = at::empty({T, B, GH}, d_hs.options());
  auto dgh = at::empty({T, B, GH}, d_hs.options());
  auto dc0 = at::empty({T, B, 1}, d_hs.options());
  auto dc1 = has_z ? at::empty({T, B, 1}, d_hs.options()) : at::Tensor();
  // dL/dh_{t-1} = carried + through_w: the direct path dh_t * (1 - u_t) plus the path
  // through W_hh, dgh_t @ W_hh; kept apart so the product needs no copy of the addend.
  auto carried = at::zeros({B, H}, d_hs.options());
  auto through_w = at::zeros({B, H}, d_hs.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, d_hs.scalar_type(), "backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* carried_p = carried.data_ptr<scalar_t>();
    const scalar_t* through_w_p = through_w.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* d_hs_t = d_hs.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* gate_t = gates.data_ptr<scalar_t>() + t * B * split;
      const scalar_t* n_t = n_all.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* gh_t = gh_all.data_ptr<scalar_t>() + t * B * GH;
      const scalar_t* h_prev = t > 0 ? hs.data_ptr<scalar_t>() + (t - 1) * B * H : nullptr;
      const scalar_t* c0_t = c0.data_ptr<scalar_t>() + t * B;
      const scalar_t* c1_t = has_z ? c1.data_ptr<scalar_t>() + t * B : nullptr;
      scalar_t* dgi_t = dgi.data_ptr<scalar_t>() + t * B * GH;
      scalar_t* dgh_t = dgh.data_ptr<scalar_t>() + t * B * GH;
      scalar_t* dc0_t = dc0.data_ptr<scalar_t>() + t * B;
      scalar_t* dc1_t = has_z ? dc1.data_ptr<scalar_t>() + t * B : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        const acc_t u0 = c0_t[b], u1 = has_z ? acc_t(c1_t[b]) : acc_t(0);
        acc_t sum_du = 0, sum_du_z = 0;
        for (int64_t j = 0; j < H; ++j) {
          const int64_t i = b * H + j;
          const acc_t r = gate_t[b * split + j];
          const acc_t z = has_z ? acc_t(gate_t[b * split + H + j]) : acc_t(0);
          const acc_t n = n_t[i];
          const acc_t u = has_z ? u0 + u1 * z : u0;
          const acc_t dh = acc_t(carried_p[i]) + acc_t(through_w_p[i]) + acc_t(d_hs_t[i]);
          const acc_t jump = n - (h_prev ? acc_t(h_prev[i]) : acc_t(0));  // dh/du
          const acc_t dn = dh * u * (1 - n * n);                         // dL/d(pre-activation of n)
          const acc_t dr = dn * acc_t(gh_t[b * GH + split + j]) * r * (1 - r);
          const acc_t du = dh * jump;
          sum_du += du;
          dgi_t[b * GH + j] = dgh_t[b * GH + j] = dr;
          if (has_z) {
            sum_du_z += du * z;
            dgi_t[b * GH + H + j] = dgh_t[b * GH + H + j] = du * u1 * z * (1 - z);
          }
          dgi_t[b * GH + split + j] = dn;
          dgh_t[b * GH + split + j] = dn * r;
          carried_p[i] = dh * (1 - u);
        }
        dc0_t[b] = sum_du;
        if (has_z) dc1_t[b] = sum_du_z;
      }
      at::Tensor dgh_slot = dgh[t];
      at::mm_out(through_w, dgh_slot, w_hh);
    }
  });
  return {dgi, dgh, dc0, dc1};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward_loop", &forward_loop, "FusedRecurrence forward loop (CPU)");
  m.def("backward", &backward, "FusedRecurrence backward (CPU)");
}
