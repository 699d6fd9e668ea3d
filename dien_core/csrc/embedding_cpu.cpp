// The gradient of an embedding lookup (``index_select`` of table rows) as a dense table.
//
// torch's CPU ``index_add_`` goes through its scatter kernel element by element; here each
// thread owns a range of table rows, scans the ids once and adds the rows that fall in its
// range (no atomics, no sort), each row's add a SIMD loop.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "kernels.h"

namespace dien_core {

template <typename scalar_t>
void add_rows(const int64_t* id_p, const scalar_t* g, scalar_t* o, int64_t M, int64_t D, int64_t rows, int64_t tasks) {
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t lo = rows * task / tasks, hi = rows * (task + 1) / tasks;  // the table rows this task owns
      for (int64_t i = 0; i < M; ++i) {
        const int64_t id = id_p[i];
        if (id < lo || id >= hi) continue;
        scalar_t* __restrict__ dst = o + id * D;
        const scalar_t* __restrict__ src = g + i * D;
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
      }
    }
  });
}

// ids (M) int64, grad (M, D), rows -> (rows, D): row ids[i] accumulates grad[i].
at::Tensor embedding_backward(const at::Tensor& ids_any, const at::Tensor& grad_any, int64_t rows) {
  const at::Tensor ids = ids_any.contiguous(), grad = grad_any.contiguous();
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.dim() == 1 && grad.dim() == 2 && grad.size(0) == ids.size(0),
              "embedding_backward: ids (M) int64 and grad (M, D)");
  const int64_t M = ids.size(0), D = grad.size(1);
  at::Tensor out = at::zeros({rows, D}, grad.options());
  // one task per thread once there is enough to share (each scans all ids)
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), M / 4096));
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, grad.scalar_type(), "embedding_backward", [&] {
    add_rows<scalar_t>(ids.data_ptr<int64_t>(), grad.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), M, D, rows, tasks);
  });
  return out;
}

}  // namespace dien_core
