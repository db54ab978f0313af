"""Benchmarks: archdsl's analytic figures and speed beside the tools people use today.

``python -m bench`` measures, in one run on one machine, how long archdsl takes to compute
a network's shapes, parameters and MACs from its text, against fvcore, ptflops, thop,
torchinfo and calflops on the torchvision/timm model; whether the figures agree with the
published ones (and why each tool differs); how fast the modules archdsl builds run
against torchvision's and timm's; how compile time grows with depth; and the peak memory
of the command. It writes BENCHMARKS.md.
"""
