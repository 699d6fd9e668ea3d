"""The fast paths on a GPU (cuDNN GRU, fused AUGRU/AGRU) against the CPU float64 reference.

Skipped with a message on machines without CUDA; `scripts/device_check.sh` runs them on the GPU machine.
"""

import pytest
import torch

from bench.models import MODEL_NAMES, build_model
from dien_core import ModelConfig
from dien_core.recurrent import AGRU, AIGRU, AUGRU, GRU
from tests.helpers import VOCAB, random_batch, repad

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.mark.parametrize("cls, implementation", [(GRU, "native"), (AIGRU, "native"), (GRU, "torch"), (AGRU, "torch"), (AUGRU, "torch")])
def test_fast_path_on_cuda_equals_float64_reference(cls, implementation):
    torch.manual_seed(0)
    ref = cls(16, 12, implementation="reference").double()
    fast = cls(16, 12, implementation=implementation).cuda()
    fast.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    x, att = torch.randn(33, 20, 16, dtype=torch.float64), torch.rand(33, 20, dtype=torch.float64)
    lengths = torch.randint(0, 21, (33,))
    x.requires_grad_(True)
    out, last = ref(x, att, lengths)
    (out.sum() + last.pow(2).sum()).backward()
    xc = x.detach().float().cuda().requires_grad_(True)
    out_c, last_c = fast(xc, att.float().cuda(), lengths.cuda())
    (out_c.sum() + last_c.pow(2).sum()).backward()
    assert (out_c.double().cpu() - out).abs().max() < 1e-4 and (last_c.double().cpu() - last).abs().max() < 1e-4
    assert (xc.grad.double().cpu() - x.grad).abs().max() < 1e-3
    for name, p in fast.named_parameters():
        assert (p.grad.double().cpu() - getattr(ref, name).grad).abs().max() < 1e-3, name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_on_cuda_match_cpu_and_ignore_padding(name):
    torch.manual_seed(1)
    config = ModelConfig(embedding_dim=4, attention_hidden=(8,), aux_hidden=(8,), mlp_hidden=(16,))
    model = build_model(name, config, VOCAB).eval()
    on_gpu = build_model(name, config, VOCAB, "cuda").eval()  # its own plan: cuDNN and Triton where the CPU's runs C++
    on_gpu.load_state_dict(model.state_dict())
    batch = random_batch(B=9, T=7)
    with torch.no_grad():
        cpu = model(batch).logits
        gpu = on_gpu(batch.to("cuda")).logits.cpu()
        padded = on_gpu(repad(batch, 15, fill=-1).to("cuda")).logits.cpu()
    assert (cpu - gpu).abs().max() < 1e-4 and (gpu - padded).abs().max() < 1e-5
