"""Super-resolution recipes (SRResNet, EDSR, EDSR-8-128 on DIV2K) for keras-basis.

Import the builders with ``from examples.div2k.models import srresnet, edsr, edsr_8_128``
from the repository root; see ``examples/div2k/README.md``.
"""
