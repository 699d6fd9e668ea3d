// Shared by dien_core's CPU kernels: the elementwise functions their SIMD loops call,
// and the entry points module.cpp binds.
#pragma once

#include <torch/extension.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dien_core {

// exp for float: Cody-Waite reduction and Cephes' polynomial (relative error < 1e-7),
// rounding by the 1.5 * 2^23 trick so it vectorises without SSE4.1's round.
inline float exp_of(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double exp_of(double x) { return std::exp(x); }

template <typename acc_t>
inline acc_t sigmoid_of(acc_t x) {
  return acc_t(1) / (acc_t(1) + exp_of(-x));
}
template <typename acc_t>
inline acc_t tanh_of(acc_t x) {
  return acc_t(2) * sigmoid_of(acc_t(2) * x) - acc_t(1);  // absolute error ~1e-7 in float
}
template <>
inline double tanh_of(double x) {
  return std::tanh(x);
}

// x <- sigmoid(x), or max(x, 0) with relu, in place over n contiguous values.
template <typename scalar_t>
void activate_inplace(scalar_t* __restrict__ p, int64_t n, bool relu) {
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] = std::max(p[i], scalar_t(0));
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) p[i] = sigmoid_of(p[i]);
}

// out[r, :Jp] = x[r, :K] @ wt for ROWS rows of x (row stride x_stride), wt (K, Jp) row-major with Jp
// a multiple of kProductTile (zero-padded columns): each kProductTile-wide block of the outputs of
// ROWS rows is accumulated in registers over K. For the recurrences' steps, whose products (tens
// of rows, K = H) are too small for a library call to pay for its dispatch.
constexpr int64_t kProductTile = 16;
constexpr int kProductRows = 6;

template <int ROWS, typename scalar_t, typename acc_t>
inline void product_rows(const scalar_t* __restrict__ x, int64_t x_stride, int64_t K, const acc_t* __restrict__ wt, int64_t Jp,
                         acc_t* __restrict__ out, int64_t out_stride) {
  for (int64_t j0 = 0; j0 < Jp; j0 += kProductTile) {
    acc_t acc[ROWS][kProductTile] = {};
    for (int64_t k = 0; k < K; ++k) {
      const acc_t* __restrict__ w = wt + k * Jp + j0;
#pragma GCC unroll 8
      for (int r = 0; r < ROWS; ++r) {
        const acc_t v = acc_t(x[r * x_stride + k]);
#pragma omp simd
        for (int64_t j = 0; j < kProductTile; ++j) acc[r][j] += v * w[j];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r)
#pragma omp simd
      for (int64_t j = 0; j < kProductTile; ++j) out[r * out_stride + j0 + j] = acc[r][j];
  }
}

// out (rows, Jp) = x (rows, K) @ wt (K, Jp), as product_rows, kProductRows rows at a time.
template <typename scalar_t, typename acc_t>
inline void small_product(const scalar_t* x, int64_t rows, int64_t x_stride, int64_t K, const acc_t* wt, int64_t Jp, acc_t* out) {
  int64_t r = 0;
  for (; r + kProductRows <= rows; r += kProductRows) product_rows<kProductRows>(x + r * x_stride, x_stride, K, wt, Jp, out + r * Jp, Jp);
  for (; r < rows; ++r) product_rows<1>(x + r * x_stride, x_stride, K, wt, Jp, out + r * Jp, Jp);
}

// w (J, K) -> its transpose (K, Jp) in acc_t, Jp = J rounded up to kProductTile, zeros past J.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> padded_transpose(const at::Tensor& w_any, int64_t& Jp) {
  const at::Tensor w = w_any.contiguous();
  const int64_t J = w.size(0), K = w.size(1);
  Jp = (J + kProductTile - 1) / kProductTile * kProductTile;
  std::vector<acc_t> wt(K * Jp, acc_t(0));
  const scalar_t* p = w.data_ptr<scalar_t>();
  for (int64_t j = 0; j < J; ++j)
    for (int64_t k = 0; k < K; ++k) wt[k * Jp + j] = acc_t(p[j * K + k]);
  return wt;
}

// Whether each value of idx (contiguous int64) lies in [0, bound): one pass, no reduction or .item().
inline bool indices_within(const at::Tensor& idx, int64_t bound) {
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0, n = idx.numel(); i < n; ++i)
    if (p[i] < 0 || p[i] >= bound) return false;
  return true;
}

// While alive, products called from this thread run on it alone: inside a parallel region over
// tiles a nested team only adds waits. Restores the setting (the region may run inline).
struct SingleThreadedProducts {
#ifdef _OPENMP
  const int outer = omp_get_max_threads();
  SingleThreadedProducts() { omp_set_num_threads(1); }
  ~SingleThreadedProducts() { omp_set_num_threads(outer); }
#endif
};

// recurrence_cpu.cpp
std::vector<at::Tensor> forward_loop(const at::Tensor& gi, const at::Tensor& c0, const c10::optional<at::Tensor>& c1,
                                     const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh, bool save,
                                     const c10::optional<at::Tensor>& rows);
std::vector<at::Tensor> backward(const at::Tensor& d_hs, const at::Tensor& gates, const at::Tensor& n_all,
                                 const at::Tensor& gh_n, const at::Tensor& hs, const at::Tensor& c0,
                                 const c10::optional<at::Tensor>& c1, const at::Tensor& w_hh);
// aux_loss_cpu.cpp
std::vector<at::Tensor> aux_loss(const at::Tensor& h, const at::Tensor& pos, const at::Tensor& neg, const at::Tensor& weight,
                                 const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, bool relu,
                                 int64_t shift, bool with_grad);
// attention_cpu.cpp
at::Tensor attention_scores(const at::Tensor& query, const at::Tensor& keys, const at::Tensor& key_part, const at::Tensor& owner,
                            const at::Tensor& w_row, const at::Tensor& b_first, const at::Tensor& w_p,
                            const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, bool relu);
// embedding_cpu.cpp
at::Tensor gather_rows(const std::vector<at::Tensor>& tables, const std::vector<at::Tensor>& ids);
at::Tensor scatter_rows(const std::vector<at::Tensor>& ids, const std::vector<at::Tensor>& grads, int64_t rows);

}  // namespace dien_core
