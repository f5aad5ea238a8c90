"""Interop with other text-game libraries, each an optional extra imported only when used.

- `envs.interop.textarena`: TextArena games as icl inner envs (`TextArenaGame`, registered as
  `icl/TextArena-<Game>-v0` when textarena is installed) and every icl id as a TextArena game
  (`register_icl_envs()`).
- `envs.interop.gem`: GEM games as icl inner envs (`GemGame`) when `gem` is installed.
"""

__all__ = ["textarena", "gem"]
