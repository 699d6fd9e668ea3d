// The auxiliary loss (dien_core/aux_loss.py, AuxiliaryLoss; its Function in dien_core/kernels/aux_loss.py) and its gradients, fused over row tiles.
//
// The loss is a sum over pairs, so its backward can run right after its forward,
// tile by tile: each tile of rows goes through the MLP (sigmoid or ReLU hidden layers) for the clicked and
// the negative behaviour, its loss and the gradients of everything are made while
// the tile's activations are still in cache, and only the gradients of the inputs
// and the weights leave it. Threads take whole tiles with their own weight-gradient
// accumulators (summed at the end); products are at::mm on the tile, elementwise
// work in SIMD loops. Same algebra as the torch form: the first layer is split into
// a state term (computed once per pair, shared by both behaviours) and a behaviour term.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "kernels.h"

namespace dien_core {
namespace {

constexpr int64_t kTileRows = 512;  // pairs per tile: the 2 x 512 rows of activations and gradients stay in L2

// One thread's weight-gradient accumulators and tile buffers (allocated once: allocating
// per tile costs page faults and serialises the threads on the allocator).
struct Workspace {
  std::vector<at::Tensor> d_weights, d_biases;  // d_weights[0] is made at the end: its two blocks are kept apart
  at::Tensor d_w_state, d_w_item;                // (H1, H), (H1, E): contiguous, so addmm_ writes in place
  at::Tensor items, state_term, logits, d_logit, d_state;
  std::vector<at::Tensor> acts, grads;  // per hidden layer: activation outputs and dL/d(outputs), (2R, H_l)
  double loss = 0;
};

// d <- d * s * (1 - s): the gradient through a sigmoid whose output is s; d <- d * (s > 0) through a relu.
template <typename scalar_t>
void through_activation(at::Tensor& d, const at::Tensor& s, bool relu) {
  scalar_t* __restrict__ dp = d.data_ptr<scalar_t>();
  const scalar_t* __restrict__ sp = s.data_ptr<scalar_t>();
  const int64_t n = d.numel();
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dp[i] = sp[i] > scalar_t(0) ? dp[i] : scalar_t(0);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dp[i] *= sp[i] * (scalar_t(1) - sp[i]);
}

template <typename scalar_t>
inline scalar_t softplus_of(scalar_t x) {  // log(1 + e^x), stable
  return std::max(x, scalar_t(0)) + std::log1p(std::exp(-std::abs(x)));
}

template <typename scalar_t>
void tile(int64_t r0, int64_t r1, const at::Tensor& h, const at::Tensor& pos, const at::Tensor& neg, const at::Tensor& weight,
          const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, const at::Tensor& w_state,
          const at::Tensor& w_item, int64_t shift, bool with_grad, bool relu, Workspace& ws, at::Tensor& dh, at::Tensor& dpos,
          at::Tensor& dneg) {
  const int64_t R = r1 - r0, L = static_cast<int64_t>(weights.size()) - 1;  // L hidden layers, then the output unit
  const at::Tensor h_tile = h.narrow(0, r0, R);
  at::Tensor items = ws.items.narrow(0, 0, 2 * R);  // (2R, E): clicked rows, then negatives
  items.narrow(0, 0, R).copy_(pos.narrow(0, r0 + shift, R));
  items.narrow(0, R, R).copy_(neg.narrow(0, r0 + shift, R));
  // First layer: state term once per pair, added to both behaviours' terms.
  at::Tensor state_term = ws.state_term.narrow(0, 0, R);  // (R, H1)
  at::addmm_out(state_term, biases[0], h_tile, w_state.t());
  std::vector<at::Tensor> acts;  // activation outputs of each hidden layer, (2R, H_l)
  for (int64_t l = 0; l < L; ++l) acts.push_back(ws.acts[l].narrow(0, 0, 2 * R));
  at::mm_out(acts[0], items, w_item.t());
  {
    scalar_t* __restrict__ zp = acts[0].data_ptr<scalar_t>();
    const scalar_t* __restrict__ sp = state_term.data_ptr<scalar_t>();
    const int64_t n = R * acts[0].size(1);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) zp[i] += sp[i];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) zp[n + i] += sp[i];
  }
  activate_inplace<scalar_t>(acts[0].data_ptr<scalar_t>(), acts[0].numel(), relu);
  for (int64_t l = 1; l < L; ++l) {
    at::addmm_out(acts[l], biases[l], acts[l - 1], weights[l].t());
    activate_inplace<scalar_t>(acts[l].data_ptr<scalar_t>(), acts[l].numel(), relu);
  }
  at::Tensor logits = ws.logits.narrow(0, 0, 2 * R);  // (2R, 1)
  at::addmm_out(logits, biases[L], acts[L - 1], weights[L].t());
  const scalar_t* __restrict__ lp = logits.data_ptr<scalar_t>();
  const scalar_t* __restrict__ wp = weight.data_ptr<scalar_t>() + r0;
  at::Tensor d_logit = ws.d_logit.narrow(0, 0, 2 * R);
  scalar_t* __restrict__ dl = d_logit.data_ptr<scalar_t>();
  double loss = 0;
  for (int64_t i = 0; i < R; ++i) {  // label 1 for the clicked behaviour, 0 for the negative
    const scalar_t lp_i = lp[i], ln_i = lp[R + i], w = wp[i];
    loss += double(w) * double(softplus_of(-lp_i) + softplus_of(ln_i));
    dl[i] = w * (sigmoid_of(lp_i) - scalar_t(1));
    dl[R + i] = w * sigmoid_of(ln_i);
  }
  ws.loss += loss;
  if (!with_grad) return;
  // Output unit, then back through the hidden layers.
  ws.d_weights[L].addmm_(d_logit.t(), acts[L - 1]);
  ws.d_biases[L] += d_logit.sum(0);
  at::Tensor d = ws.grads[L - 1].narrow(0, 0, 2 * R);
  at::mm_out(d, d_logit, weights[L]);  // (2R, H_L)
  for (int64_t l = L - 1; l >= 0; --l) {
    through_activation<scalar_t>(d, acts[l], relu);  // now dL/d(pre-activation) of layer l
    if (l == 0) break;
    ws.d_weights[l].addmm_(d.t(), acts[l - 1]);
    ws.d_biases[l] += d.sum(0);
    at::Tensor below = ws.grads[l - 1].narrow(0, 0, 2 * R);
    at::mm_out(below, d, weights[l]);
    d = below;
  }
  // First layer: behaviour term per row, state term per pair (both behaviours' gradients summed).
  ws.d_w_item.addmm_(d.t(), items);
  at::Tensor dpos_rows = dpos.narrow(0, r0 + shift, R), dneg_rows = dneg.narrow(0, r0 + shift, R);
  at::Tensor dh_rows = dh.narrow(0, r0, R);
  at::mm_out(dpos_rows, d.narrow(0, 0, R), w_item);
  at::mm_out(dneg_rows, d.narrow(0, R, R), w_item);
  at::Tensor d_state = ws.d_state.narrow(0, 0, R);  // (R, H1)
  at::add_out(d_state, d.narrow(0, 0, R), d.narrow(0, R, R));
  ws.d_w_state.addmm_(d_state.t(), h_tile);
  ws.d_biases[0] += d_state.sum(0);
  at::mm_out(dh_rows, d_state, w_state);
}

}  // namespace

// h (M, H) states, pos / neg (M, E) clicked and negative behaviours, pairs (h row i, behaviour
// row i + shift) for i < N = M - shift (time-major rows: shift = B), weight (N) per pair
// (valid / number of valid pairs), weights[l] (H_{l+1}, H_l) and biases[l] of each hidden
// layer then of the output unit (1, H_L); weights[0] takes [h, behaviour] (H + E columns); hidden
// layers are sigmoid (the authors') or, with relu, ReLU.
// -> {loss (), dh, dpos, dneg (the inputs' shapes; zero in rows no pair reads), dweights...,
// dbiases...} (gradients empty when !with_grad).
std::vector<at::Tensor> aux_loss(const at::Tensor& h_any, const at::Tensor& pos_any, const at::Tensor& neg_any,
                                 const at::Tensor& weight_any, const std::vector<at::Tensor>& weights_any,
                                 const std::vector<at::Tensor>& biases_any, bool relu, int64_t shift, bool with_grad) {
  TORCH_CHECK(weights_any.size() >= 2 && weights_any.size() == biases_any.size(), "aux_loss: one or more hidden layers and an output unit");
  // Detached: the worker threads do not inherit the caller's no-grad mode, and nothing here is for autograd.
  const at::Tensor h = h_any.detach().contiguous(), pos = pos_any.detach().contiguous(), neg = neg_any.detach().contiguous();
  const at::Tensor weight = weight_any.detach().contiguous();
  std::vector<at::Tensor> weights, biases;
  for (const auto& w : weights_any) weights.push_back(w.detach().contiguous());
  for (const auto& b : biases_any) biases.push_back(b.detach().contiguous());
  const int64_t M = h.size(0), H = h.size(1), E = pos.size(1), N = std::max<int64_t>(M - shift, 0);
  TORCH_CHECK(shift >= 0 && pos.size(0) == M && neg.size(0) == M && weight.numel() == N,
              "aux_loss: h, pos, neg of M rows and one weight per pair (M - shift)");
  const at::Tensor w_state = weights[0].narrow(1, 0, H).contiguous(), w_item = weights[0].narrow(1, H, E).contiguous();
  at::Tensor dh = with_grad ? at::empty_like(h) : at::Tensor(), dpos = with_grad ? at::empty_like(pos) : at::Tensor();
  at::Tensor dneg = with_grad ? at::empty_like(neg) : at::Tensor();
  if (with_grad) {  // rows no pair reads: the last shift states, the first shift behaviours
    dh.narrow(0, N, M - N).zero_();
    dpos.narrow(0, 0, M - N).zero_();
    dneg.narrow(0, 0, M - N).zero_();
  }
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  const int64_t slots = at::get_num_threads();
  const int64_t R = std::min(N, kTileRows), L = static_cast<int64_t>(weights.size()) - 1;
  std::vector<Workspace> per_thread(slots);
  for (auto& ws : per_thread) {
    ws.d_weights.push_back(at::Tensor());  // made from d_w_state and d_w_item at the end
    for (int64_t l = 1; l <= L; ++l) ws.d_weights.push_back(with_grad ? at::zeros_like(weights[l]) : at::Tensor());
    if (with_grad) {
      ws.d_w_state = at::zeros_like(w_state);
      ws.d_w_item = at::zeros_like(w_item);
    }
    for (const auto& b : biases) ws.d_biases.push_back(with_grad ? at::zeros_like(b) : at::Tensor());
    ws.items = at::empty({2 * R, E}, h.options());
    ws.state_term = at::empty({R, weights[0].size(0)}, h.options());
    ws.d_state = at::empty({R, weights[0].size(0)}, h.options());
    ws.logits = at::empty({2 * R, 1}, h.options());
    ws.d_logit = at::empty({2 * R, 1}, h.options());
    for (int64_t l = 0; l < L; ++l) {
      ws.acts.push_back(at::empty({2 * R, weights[l].size(0)}, h.options()));
      ws.grads.push_back(at::empty({2 * R, weights[l].size(0)}, h.options()));
    }
  }
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "aux_loss", [&] {
    at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
      const SingleThreadedProducts guard;
      const at::NoGradGuard no_grad;
      Workspace& ws = per_thread[at::get_thread_num()];
      for (int64_t t = begin; t < end; ++t)
        tile<scalar_t>(t * kTileRows, std::min(N, (t + 1) * kTileRows), h, pos, neg, weight, weights, biases, w_state, w_item,
                       shift, with_grad, relu, ws, dh, dpos, dneg);
    });
  });
  double loss = 0;
  for (const auto& ws : per_thread) loss += ws.loss;
  std::vector<at::Tensor> out = {at::scalar_tensor(loss, h.options()), dh, dpos, dneg};
  if (with_grad)
    for (auto& ws : per_thread) ws.d_weights[0] = at::cat({ws.d_w_state, ws.d_w_item}, 1);
  // The threads' sums, weights then biases (undefined without gradients).
  for (const auto member : {&Workspace::d_weights, &Workspace::d_biases})
    for (int64_t l = 0; l <= L; ++l) {
      at::Tensor total = (per_thread[0].*member)[l];
      for (int64_t s = 1; with_grad && s < slots; ++s) total += (per_thread[s].*member)[l];
      out.push_back(total);
    }
  return out;
}

}  // namespace dien_core
