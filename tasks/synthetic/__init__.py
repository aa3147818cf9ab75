"""Made-up material: face photos shipped in pip packages, FACS warps of them (``facs_warp``), animated clips
and the demo corpus (``media``). Used by the demo, tests, benchmarks and ``evaluate`` (a still image becomes
a clip); never by a run over real lessons.

May import: ``tasks.store``, ``tasks.extract`` and ``models`` (and third-party packages); never ``predict``,
``analyse`` or ``flows``.
"""
