"""The command-line tools (console scripts in pyproject.toml).

Each tool is a thin `main` over the library: what the tools share (exit
statuses, warnings, progress, argument types) is `sofa_compiler.cli`, and no
tool imports another.
"""
