// The two sequential loops of FusedRecurrence (dien_core/recurrent/fused.py) in C++.
//
// Same equations and saved tensors as the Python loops there; only the per-step
// dispatch is gone: one matrix product per step (at::mm_out, on ATen's threads),
// the gates' sigmoid/tanh through ATen's vectorised kernels, the rest in plain
// loops over rows on one thread (waking a second one costs more than a step's loop).
#include <torch/extension.h>

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

// backward: d_hs (T, B, H), K (T, B, G, H), keep (T, B, H) = 1 - u, w_hh (G*H, H)
// -> dh_all (T, B, H) (dL/dh_t, all paths), dgh (T, B, G*H) (dL/d(W_hh h_{t-1} + b_hh))
std::vector<at::Tensor> backward_loop(const at::Tensor& d_hs_any, const at::Tensor& K_any, const at::Tensor& keep_any,
                                      const at::Tensor& w_hh) {
  const at::Tensor d_hs = d_hs_any.contiguous(), K = K_any.contiguous(), keep = keep_any.contiguous();
  const int64_t T = K.size(0), B = K.size(1), G = K.size(2), H = K.size(3);
  auto dh_all = at::empty({T, B, H}, d_hs.options());
  auto dgh = at::empty({T, B, G * H}, d_hs.options());
  // dL/dh_{t-1} = carried + through_w: the direct path dh_t * (1 - u_t) plus the path
  // through W_hh, dgh_t @ W_hh; kept apart so the product needs no copy of the addend.
  auto carried = at::zeros({B, H}, d_hs.options());
  auto through_w = at::zeros({B, H}, d_hs.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, d_hs.scalar_type(), "backward_loop", [&] {
    scalar_t* carried_p = carried.data_ptr<scalar_t>();
    const scalar_t* through_w_p = through_w.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* d_hs_t = d_hs.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* K_t = K.data_ptr<scalar_t>() + t * B * G * H;
      const scalar_t* keep_t = keep.data_ptr<scalar_t>() + t * B * H;
      scalar_t* dh_all_t = dh_all.data_ptr<scalar_t>() + t * B * H;
      scalar_t* dgh_t = dgh.data_ptr<scalar_t>() + t * B * G * H;
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < H; ++j) {
          const int64_t i = b * H + j;
          const scalar_t g = carried_p[i] + through_w_p[i] + d_hs_t[i];
          dh_all_t[i] = g;
          carried_p[i] = g * keep_t[i];
          for (int64_t k = 0; k < G; ++k) dgh_t[(b * G + k) * H + j] = g * K_t[(b * G + k) * H + j];
        }
      }
      at::Tensor dgh_slot = dgh[t];
      at::mm_out(through_w, dgh_slot, w_hh);
    }
  });
  return {dh_all, dgh};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward_loop", &forward_loop, "FusedRecurrence forward loop (CPU)");
  m.def("backward_loop", &backward_loop, "FusedRecurrence backward loop (CPU)");
}
