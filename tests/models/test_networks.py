"""The small networks of :mod:`hf_dr.models.networks`, and the deprecated alias ``hf_dr.networks`` that model cards
pushed by hf-dr 0.2 import."""

import subprocess
import sys

import timm
import torch

from hf_dr.models import networks


def test_small_networks_are_timm_models_with_the_requested_shape():
    model = timm.create_model("hf_dr_cnn_fc", num_classes=7, in_chans=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    assert networks.MLPNet(input_size=64, num_classes=3, in_chans=1)(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_old_module_name_still_registers_the_networks_and_says_where_they_moved():
    code = ("import warnings, timm; warnings.simplefilter('error', FutureWarning)\n"
            "try:\n    import hf_dr.networks\nexcept FutureWarning as err:\n    print('warned:', err)\n"
            "import warnings; warnings.simplefilter('ignore'); import hf_dr.networks\n"
            "print('registered:', 'hf_dr_cnn_fc' in timm.list_models('hf_dr_*'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: hf_dr.networks moved to hf_dr.models.networks" in out
    assert "registered: True" in out
