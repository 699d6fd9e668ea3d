// Python bindings of dien_core's CPU kernels (loaded by dien_core/cpp.py).
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward_loop", &dien_core::forward_loop, "FusedRecurrence forward loop (CPU)");
  m.def("backward", &dien_core::backward, "FusedRecurrence backward (CPU)");
  m.def("embedding_backward", &dien_core::embedding_backward, "gradient of a row lookup as a dense table (CPU)");
  m.def("aux_loss", &dien_core::aux_loss, "auxiliary loss and its gradients, fused over row tiles (CPU)");
}
