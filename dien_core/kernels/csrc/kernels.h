// Shared by dien_core's CPU kernels: the elementwise functions their SIMD loops call,
// and the entry points module.cpp binds.
#pragma once

#include <torch/extension.h>

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

// recurrence_cpu.cpp
std::vector<at::Tensor> forward_loop(const at::Tensor& gi, const at::Tensor& c0, const c10::optional<at::Tensor>& c1,
                                     const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh, bool save);
std::vector<at::Tensor> backward(const at::Tensor& d_hs, const at::Tensor& gates, const at::Tensor& n_all,
                                 const at::Tensor& gh_n, const at::Tensor& hs, const at::Tensor& c0,
                                 const c10::optional<at::Tensor>& c1, const at::Tensor& w_hh);
// aux_loss_cpu.cpp
std::vector<at::Tensor> aux_loss(const at::Tensor& h, const at::Tensor& pos, const at::Tensor& neg, const at::Tensor& weight,
                                 const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, bool relu,
                                 int64_t shift, bool with_grad);
// embedding_cpu.cpp
at::Tensor gather_rows(const std::vector<at::Tensor>& tables, const std::vector<at::Tensor>& ids);
at::Tensor scatter_rows(const std::vector<at::Tensor>& ids, const std::vector<at::Tensor>& grads, int64_t rows);

}  // namespace dien_core
