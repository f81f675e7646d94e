"""The evaluation report: `python -m benchmarks [--quick|--smoke] [--out DIR]`.

Each module measures one part of the report (workloads, ablation, accuracy,
GPU comparison, tool speed, roofline); `render` turns the measurements into
Markdown and PNG plots. Every figure comes from the same run as the figures
it is compared with.
"""
