"""``rnnzoo web``: presets as a static site that runs them in the browser on onnxruntime-web.

The site holds the presets' verified ONNX bundles (int8 where a preset ships one, fp32
otherwise), onnxruntime-web's wasm build (copied from npm at build time, so the site works
offline), ``rnnzoo.mjs`` (the per-task pre- and post-processing in JavaScript, the same as the
Python runtime's) and ``index.html``. Any static file server serves it; no server code. TF-free.
"""

from rnnzoo.web.build import (
    JS_DIR,
    ORT_FILES,
    SUPPORTED_TASKS,
    WebBuildError,
    build_site,
    find_onnxruntime_web,
)

__all__ = ["JS_DIR", "ORT_FILES", "SUPPORTED_TASKS", "WebBuildError", "build_site",
           "find_onnxruntime_web"]
