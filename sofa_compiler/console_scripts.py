"""What marks a console script (pyproject.toml's `[project.scripts]`): no imports, so that
`sofa_compiler.tools` can read it before it installs its Ctrl-C handler for the loading phase."""

CONSOLE_SCRIPT_PREFIX = "sofa-"
"""Every console script's name starts so."""
