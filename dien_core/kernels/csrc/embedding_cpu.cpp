// Embedding lookups (TableLookup in dien_core/kernels/lookup.py): rows of several tables side by side,
// and the dense table gradient of every lookup into one table, in one pass each.
//
// Id 0 is padding in every table: it reads as a zero row and accumulates no gradient, so
// callers need no mask. The gather writes each output row once (no concatenation pass after
// two lookups). In the scatter each thread owns a range of table rows, scans the ids of every
// group once and adds the gradient rows that fall in its range (no atomics, no sort); the
// gradients may be column blocks of a wider tensor, in any layout, so nothing is copied first.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "kernels.h"

namespace dien_core {
namespace {

// (A pragma cannot sit inside AT_DISPATCH's macro argument: the row loops are functions.)
template <typename scalar_t>
inline void copy_row(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t D) {
#pragma omp simd
  for (int64_t j = 0; j < D; ++j) dst[j] = src[j];
}

template <typename scalar_t>
inline void add_row(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t D) {
#pragma omp simd
  for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
}

}  // namespace

// tables[k] (V_k, D_k), ids[k] (S0, S1) int64 -> (S0, S1, sum_k D_k): [tables[0][ids[0]], tables[1][ids[1]], ...].
at::Tensor gather_rows(const std::vector<at::Tensor>& tables_any, const std::vector<at::Tensor>& ids_any) {
  TORCH_CHECK(!tables_any.empty() && tables_any.size() == ids_any.size(), "gather_rows: one id tensor per table");
  std::vector<at::Tensor> tables, ids;
  int64_t width = 0;
  for (size_t k = 0; k < tables_any.size(); ++k) {
    tables.push_back(tables_any[k].detach().contiguous());
    ids.push_back(ids_any[k].contiguous());
    TORCH_CHECK(tables[k].dim() == 2 && tables[k].scalar_type() == tables[0].scalar_type(), "gather_rows: 2-D tables of one dtype");
    TORCH_CHECK(ids[k].scalar_type() == at::kLong && ids[k].dim() == 2 && ids[k].sizes() == ids[0].sizes(),
                "gather_rows: ids (S0, S1) int64, one shape for every table");
    width += tables[k].size(1);
  }
  const int64_t M = ids[0].numel();
  at::Tensor out = at::empty({ids[0].size(0), ids[0].size(1), width}, tables[0].options());
  std::atomic<bool> out_of_range{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "gather_rows", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, M, 2048, [&](int64_t begin, int64_t end) {
      int64_t column = 0;
      for (size_t k = 0; k < tables.size(); ++k) {
        const int64_t V = tables[k].size(0), D = tables[k].size(1);
        const scalar_t* t = tables[k].data_ptr<scalar_t>();
        const int64_t* id_p = ids[k].data_ptr<int64_t>();
        for (int64_t i = begin; i < end; ++i) {
          const int64_t id = id_p[i];
          scalar_t* dst = o + i * width + column;
          if (id <= 0 || id >= V) {  // padding (0) reads zeros; a bad id is reported below
            if (id != 0) out_of_range = true;
            std::fill(dst, dst + D, scalar_t(0));
            continue;
          }
          copy_row(dst, t + id * D, D);
        }
        column += D;
      }
    });
  });
  TORCH_CHECK(!out_of_range, "gather_rows: an id is negative or not below its table's number of rows");
  return out;
}

// ids[g] (S0, S1) int64, grads[g] (S0, S1, D) in any layout with unit column stride -> (rows, D):
// row ids[g][a][b] accumulates grads[g][a][b] over every group; id 0 (padding) accumulates nothing.
at::Tensor scatter_rows(const std::vector<at::Tensor>& ids_any, const std::vector<at::Tensor>& grads_any, int64_t rows) {
  TORCH_CHECK(!grads_any.empty() && ids_any.size() == grads_any.size(), "scatter_rows: one gradient per id tensor");
  std::vector<at::Tensor> ids, grads;
  for (size_t g = 0; g < grads_any.size(); ++g) {
    ids.push_back(ids_any[g].contiguous());
    grads.push_back(grads_any[g].stride(-1) == 1 ? grads_any[g] : grads_any[g].contiguous());
    TORCH_CHECK(ids[g].scalar_type() == at::kLong && ids[g].dim() == 2 && grads[g].dim() == 3 &&
                    grads[g].size(0) == ids[g].size(0) && grads[g].size(1) == ids[g].size(1) &&
                    grads[g].size(2) == grads[0].size(2) && grads[g].scalar_type() == grads[0].scalar_type(),
                "scatter_rows: ids (S0, S1) int64 and gradients (S0, S1, D) of one D and dtype");
  }
  const int64_t D = grads[0].size(2);
  int64_t M = 0;
  for (const auto& i : ids) M += i.numel();
  at::Tensor out = at::zeros({rows, D}, grads[0].options());
  // one task per thread once there is enough to share (each scans all ids)
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), M / 4096));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "scatter_rows", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t lo = std::max<int64_t>(1, rows * task / tasks), hi = rows * (task + 1) / tasks;  // rows owned
        for (size_t g = 0; g < grads.size(); ++g) {
          const int64_t S0 = ids[g].size(0), S1 = ids[g].size(1), s0 = grads[g].stride(0), s1 = grads[g].stride(1);
          const int64_t* id_p = ids[g].data_ptr<int64_t>();
          const scalar_t* g_p = grads[g].data_ptr<scalar_t>();
          for (int64_t a = 0; a < S0; ++a)
            for (int64_t b = 0; b < S1; ++b) {
              const int64_t id = id_p[a * S1 + b];
              if (id < lo || id >= hi) continue;
              add_row(o + id * D, g_p + a * s0 + b * s1, D);
            }
        }
      }
    });
  });
  return out;
}

}  // namespace dien_core
