"""``rnnzoo --limit NAME=N COMMAND``: a limit of rnnzoo.limits changed for one command, and a
bad flag refused in one line before the command runs."""

from __future__ import annotations

import rnnzoo.limits as limits
from rnnzoo.cli import main


def test_global_limit_flag_applies_and_bad_flags_are_one_line(capsys):
    before = limits.current()
    try:
        assert main(["--limit", "max_text_chars=5", "--limit", "max_beam_width=3", "list"]) == 0
        assert (limits.current().max_text_chars, limits.current().max_beam_width) == (5, 3)
        capsys.readouterr()
        assert main(["--limit", "bogus=3", "list"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rnnzoo: error: --limit 'bogus=3'") and "\n" not in err
        assert main(["--limit", "max_text_chars=-1", "list"]) == 2
        assert "expected a positive int" in capsys.readouterr().err
    finally:
        limits.configure(**{f: getattr(before, f) for f in before.__dataclass_fields__})
