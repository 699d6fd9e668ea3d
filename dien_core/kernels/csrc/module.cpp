// Python bindings of dien_core's CPU kernels (loaded by dien_core/kernels/cpp.py).
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.def("forward_loop", &dien_core::forward_loop, "FusedRecurrence forward loop (CPU)", py::arg("gi"), py::arg("c0"), py::arg("c1"),
        py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("save") = true, py::arg("rows") = py::none());
  m.def("backward", &dien_core::backward, "FusedRecurrence backward (CPU)");
  m.def("gather_rows", &dien_core::gather_rows, "rows of several tables side by side, id 0 as zeros (CPU)");
  m.def("scatter_rows", &dien_core::scatter_rows, "dense table gradient of several lookups, id 0 skipped (CPU)");
  m.def("attention_scores", &dien_core::attention_scores, "the serving path's raw attention scores, fused over tiles of candidates (CPU)");
  m.def("aux_loss", &dien_core::aux_loss, "auxiliary loss and its gradients, fused over row tiles (CPU)");
}
