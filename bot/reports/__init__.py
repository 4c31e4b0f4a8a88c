"""Admin insight: the numbers of ``stats`` (``bot.reports.stats``) and their picture (``bot.reports.chart``).

The admin flow, ``unlockbot report`` and the weekly digest all read the same numbers; only the chart module
imports matplotlib, and only when it draws.
"""
