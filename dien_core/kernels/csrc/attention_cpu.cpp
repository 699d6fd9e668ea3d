// The serving path's attention scores (dien_core/serving/parts.py, candidate_attention), fused over
// tiles of candidates. Forward only: serving needs no gradient.
//
// Each candidate c scores every step t of its request's keys with DIN's unit, its first layer split
// as in AttentionUnit.scores: (W_q + W_d) q_c + b (the candidate's row term, once per candidate),
// (W_k - W_d) k_t (the request's key part, given) and W_p (q_c * k_t) (per pair). A tile of
// candidates makes its (candidates x T) rows of q * k, their first layer, the hidden layers (sigmoid
// or ReLU) and the output unit while the rows are still in cache; only the raw scores leave it (the
// normalisation over steps runs after, in torch). The torch form makes each layer's activations
// for all N x T pairs at once (3 MB at N = T = 100 and 80 units), and runs each activation as its
// own pass over them. Threads take whole tiles; products are at::mm on the tile, on the thread's
// own (no nested team), elementwise work in SIMD loops.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <vector>

#include "kernels.h"

namespace dien_core {
namespace {

constexpr int64_t kTileRows = 512;  // (candidate, step) rows per tile: the activations stay in L2

// hidden[(c, t), :] += key_part[owner(c), t, :] + row[c, :] for the tile's candidates.
template <typename scalar_t>
void add_terms(scalar_t* __restrict__ hidden, const scalar_t* __restrict__ key_part, const scalar_t* __restrict__ row, int64_t T,
               int64_t H1) {
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* __restrict__ out = hidden + t * H1;
    const scalar_t* __restrict__ k = key_part + t * H1;
#pragma omp simd
    for (int64_t j = 0; j < H1; ++j) out[j] += k[j] + row[j];
  }
}

// products[(c, t), :] = q_c * keys[owner(c), t, :]
template <typename scalar_t>
void products_of(scalar_t* __restrict__ out, const scalar_t* __restrict__ q, const scalar_t* __restrict__ keys, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* __restrict__ o = out + t * D;
    const scalar_t* __restrict__ k = keys + t * D;
#pragma omp simd
    for (int64_t e = 0; e < D; ++e) o[e] = q[e] * k[e];
  }
}

struct Workspace {
  at::Tensor products, rows;      // (tile rows, D), (tile candidates, H1)
  std::vector<at::Tensor> acts;   // each Linear's output on the tile's rows, (tile rows, H_l)
};

template <typename scalar_t>
void tile(int64_t c0, int64_t c1, int64_t T, const at::Tensor& query, const at::Tensor& keys, const at::Tensor& key_part,
          const int64_t* owner, const at::Tensor& w_row, const at::Tensor& b_first, const at::Tensor& w_p,
          const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, bool relu, Workspace& ws, at::Tensor& scores) {
  const int64_t C = c1 - c0, rows = C * T, D = query.size(1), H1 = w_p.size(0), L = static_cast<int64_t>(weights.size());
  at::Tensor products = ws.products.narrow(0, 0, rows);
  const scalar_t* q_p = query.data_ptr<scalar_t>();
  const scalar_t* keys_p = keys.data_ptr<scalar_t>();
  for (int64_t c = 0; c < C; ++c)
    products_of<scalar_t>(products.data_ptr<scalar_t>() + c * T * D, q_p + (c0 + c) * D, keys_p + owner[c0 + c] * T * D, T, D);
  at::Tensor row = ws.rows.narrow(0, 0, C);  // (C, H1): the candidates' row terms with the bias
  at::addmm_out(row, b_first, query.narrow(0, c0, C), w_row.t());
  at::Tensor first = ws.acts[0].narrow(0, 0, rows);
  at::mm_out(first, products, w_p.t());
  const scalar_t* kp = key_part.data_ptr<scalar_t>();
  for (int64_t c = 0; c < C; ++c)
    add_terms<scalar_t>(first.data_ptr<scalar_t>() + c * T * H1, kp + owner[c0 + c] * T * H1, row.data_ptr<scalar_t>() + c * H1, T, H1);
  at::Tensor x = first;
  for (int64_t l = 0; l < L; ++l) {  // every Linear but the last is followed by the activation
    activate_inplace<scalar_t>(x.data_ptr<scalar_t>(), x.numel(), relu);
    at::Tensor y = ws.acts[l + 1].narrow(0, 0, rows);
    at::addmm_out(y, biases[l], x, weights[l].t());
    x = y;
  }
  // x is (rows, 1): the raw scores of candidates c0..c1, rows (c, t), as scores' rows c0..c1 are laid out
  scores.narrow(0, c0, C).view({rows}).copy_(x.view({rows}));
}

}  // namespace

// query (N, D) the candidates, keys (R, T, D) the requests' keys, key_part (R, T, H1) their (W_k - W_d) k
// (no bias), owner (N,) int64 each candidate's request, w_row (H1, D) = W_q + W_d, b_first (H1) and
// w_p (H1, D) of the first Linear, then weights[l] (H_{l+1}, H_l) and biases[l] of the Linear layers
// after it, the last with one output (none: the first Linear is the output unit); hidden activation
// sigmoid or, with relu, ReLU -> raw scores (N, T).
at::Tensor attention_scores(const at::Tensor& query_any, const at::Tensor& keys_any, const at::Tensor& key_part_any,
                            const at::Tensor& owner_any, const at::Tensor& w_row_any, const at::Tensor& b_first_any,
                            const at::Tensor& w_p_any, const std::vector<at::Tensor>& weights_any,
                            const std::vector<at::Tensor>& biases_any, bool relu) {
  const at::Tensor query = query_any.detach().contiguous(), keys = keys_any.detach().contiguous();
  const at::Tensor key_part = key_part_any.detach().contiguous(), owner = owner_any.contiguous();
  const at::Tensor w_row = w_row_any.detach().contiguous(), b_first = b_first_any.detach().contiguous();
  const at::Tensor w_p = w_p_any.detach().contiguous();
  std::vector<at::Tensor> weights, biases;
  for (const auto& w : weights_any) weights.push_back(w.detach().contiguous());
  for (const auto& b : biases_any) biases.push_back(b.detach().contiguous());
  TORCH_CHECK(query.is_cpu() && keys.is_cpu() && key_part.is_cpu() && owner.is_cpu(), "attention_scores: CPU tensors only");
  const int64_t N = query.size(0), D = query.size(1), R = keys.size(0), T = keys.size(1), H1 = w_p.size(0);
  TORCH_CHECK(keys.size(2) == D && key_part.size(0) == R && key_part.size(1) == T && key_part.size(2) == H1,
              "attention_scores: keys (R, T, D) and key_part (R, T, H1)");
  TORCH_CHECK(owner.scalar_type() == at::kLong && owner.numel() == N, "attention_scores: owner (N,) int64");
  TORCH_CHECK(indices_within(owner, R), "attention_scores: owner out of 0..R-1");
  TORCH_CHECK(weights.size() == biases.size() && (weights.empty() ? H1 : weights.back().size(0)) == 1,
              "attention_scores: the last Linear has one output");
  at::Tensor scores = at::empty({N, T}, query.options());
  if (N == 0 || T == 0) return scores;
  const int64_t per_tile = std::max<int64_t>(1, kTileRows / T), tiles = (N + per_tile - 1) / per_tile;
  const int64_t C = std::min(N, per_tile), L = static_cast<int64_t>(weights.size());
  std::vector<Workspace> per_thread(at::get_num_threads());
  for (auto& ws : per_thread) {
    ws.products = at::empty({C * T, D}, query.options());
    ws.rows = at::empty({C, H1}, query.options());
    ws.acts.push_back(at::empty({C * T, H1}, query.options()));
    for (int64_t l = 0; l < L; ++l) ws.acts.push_back(at::empty({C * T, weights[l].size(0)}, query.options()));
  }
  const int64_t* owner_p = owner.data_ptr<int64_t>();
  const at::ThreadLocalState caller;  // inference mode, for the workspaces made here and written on other threads
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "attention_scores", [&] {
    at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
      const at::ThreadLocalStateGuard same_modes(caller);
      const SingleThreadedProducts guard;
      const at::NoGradGuard no_grad;
      Workspace& ws = per_thread[at::get_thread_num()];
      for (int64_t i = begin; i < end; ++i)
        tile<scalar_t>(i * per_tile, std::min(N, (i + 1) * per_tile), T, query, keys, key_part, owner_p, w_row, b_first, w_p, weights,
                       biases, relu, ws, scores);
    });
  });
  return scores;
}

}  // namespace dien_core
