"""Package discovery (the rest of the build is in pyproject.toml): every package under rnnzoo/
is found, so a new application folder needs no edit here; export/ and zoo_configs/ live at the
top level and install inside the package (``package-dir`` in pyproject.toml)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["rnnzoo", "rnnzoo.*"]), "rnnzoo.export",
                "rnnzoo.zoo_configs"])
