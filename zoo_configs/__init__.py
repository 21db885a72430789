"""The rnnzoo catalogue: one YAML file per zoo entry, ``<family>/<entry>.yaml``."""
