"""Budgets for the expressions marketers write: one place, enforced wherever CEL runs.

A rule's conditions and context are CEL, evaluated by the engine for every matching event, by the
storefront inside the decision call and by the admin when it validates, dry-runs or back-tests. A
CEL program cannot loop for ever, but it can still cost without bound, and the binding (a Rust
interpreter) cannot be interrupted once it runs:

- a 40 KB chain ``1+1+…`` overflows the interpreter's stack (a segmentation fault that takes the
  whole process down; measured: 12,000 terms evaluate, 15,000 crash);
- six nested ``.all()`` over lists of 40 items are 40⁶ steps: hours.

So the budget is static first, checked on the text before CEL ever sees it (``check``): caps on
length, operators and bracket nesting, and on comprehensions (``all``, ``exists``,
``exists_one``, ``filter``; not ``map``): none inside another, at most ``MAX_COMPREHENSIONS`` in
all. The facts' lists are bounded too (histories keep 100 items, contacts 50, pages 100). The
interpreter copies values, so list arithmetic inside a comprehension still costs: the worst
expression that passes was measured at the figure in ``tests/unit/test_limits.py`` (well under a
second), not the hours or the crash of the unbounded ones.

Then a time budget at run time (``Watchdog``): an evaluation slower than ``EVALUATION_BUDGET_S``
puts its expression on a list of expressions that no longer run in this process (they evaluate as
an error, "over its time budget", which a condition treats as not holding), with a warning naming
it. Finally the admin validates in a separate process with a time limit (``services.admin.sandbox``),
so an input that got past all of this can only take down a worker, never the admin.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

MAX_EXPRESSION_CHARS = 1000
MAX_NESTING = 24
MAX_COMPREHENSION_DEPTH = 1
MAX_COMPREHENSIONS = 3
MAX_OPERATORS = 60
EVALUATION_BUDGET_S = 0.05
COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# ``map`` makes a list of whatever its body gives, a list per item included: chained, the values grow
# geometrically (``l.map(a, l.map(b, l))`` over 100 items ran 86 s). The others give a boolean or a
# part of their list. No rule needs ``map``: a condition asks yes or no.
FORBIDDEN_MACROS = frozenset({"map"})

_MACRO = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\($")
_OPERATORS = re.compile(r"&&|\|\||==|!=|<=|>=|[-+*/%<>!?]")


class ExpressionTooCostly(ValueError):
    """An expression over one of the static budgets; the message says which and by how much."""


def check(expr: str) -> None:
    """Refuse an expression over the static budget, before CEL parses it. Linear in its length."""
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise ExpressionTooCostly(f"expression of {len(expr)} characters; at most {MAX_EXPRESSION_CHARS}")
    code = _without_strings(expr)
    operators = len(_OPERATORS.findall(code))
    if operators > MAX_OPERATORS:
        raise ExpressionTooCostly(f"{operators} operators; at most {MAX_OPERATORS}")
    stack: list[bool] = []  # one entry per open bracket: whether it opens a comprehension
    comprehensions = 0
    for i, ch in enumerate(code):
        if ch in "([{":
            name = m.group(1) if ch == "(" and (m := _MACRO.search(code, max(i - 40, 0), i + 1)) else None
            if name in FORBIDDEN_MACROS:
                raise ExpressionTooCostly(f"{name}() is not allowed in a rule; use all, exists, exists_one or filter")
            macro = name in COMPREHENSIONS
            stack.append(macro)
            if len(stack) > MAX_NESTING:
                raise ExpressionTooCostly(f"brackets nested more than {MAX_NESTING} deep")
            if macro:
                comprehensions += 1
                if comprehensions > MAX_COMPREHENSIONS:
                    raise ExpressionTooCostly(
                        f"more than {MAX_COMPREHENSIONS} comprehensions (all, exists, exists_one, map, filter)"
                    )
                if sum(stack) > MAX_COMPREHENSION_DEPTH:
                    raise ExpressionTooCostly(
                        f"comprehensions nested more than {MAX_COMPREHENSION_DEPTH} deep "
                        "(each level multiplies the work by the length of a list)"
                    )
        elif ch in ")]}" and stack:
            stack.pop()


def _without_strings(expr: str) -> str:
    """The expression with the contents of its string literals blanked (brackets and operators in
    a string are text, not structure). Handles quotes of both kinds, triple quotes, escapes and raw
    strings; an unterminated string blanks the rest (CEL refuses it afterwards anyway)."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch not in "'\"":
            out.append(ch)
            i += 1
            continue
        raw = i > 0 and expr[i - 1] in "rR"
        quote = expr[i : i + 3] if expr[i : i + 3] in ("'''", '"""') else ch
        j = i + len(quote)
        while j < n and not expr.startswith(quote, j):
            j += 2 if expr[j] == "\\" and not raw else 1
        end = min(j + len(quote), n)
        out.append(quote + " " * max(end - i - 2 * len(quote), 0) + (quote if j < n else ""))
        i = end
    return "".join(out)


T = TypeVar("T")


class Watchdog:
    """The time budget at run time: expressions seen to take longer than ``budget_s`` once are not
    run again by this process (until it restarts, or the rule is changed: a new text is a new
    expression). Cheap when nothing is slow: one clock read before and after."""

    def __init__(self, budget_s: float = EVALUATION_BUDGET_S) -> None:
        self.budget_s = budget_s
        self.over_budget: dict[str, float] = {}  # expression -> the time it took

    def run(self, expr: str, evaluation: Callable[[], T]) -> T:
        if expr in self.over_budget:
            raise OverBudget(f"expression over its time budget of {self.budget_s * 1000:.0f} ms; not run again")
        started = time.perf_counter()
        try:
            return evaluation()
        finally:
            took = time.perf_counter() - started
            if took > self.budget_s:
                self.over_budget[expr] = took
                log.warning(
                    "an expression took longer than its budget and is switched off in this process",
                    extra={"expression": expr[:200], "seconds": round(took, 3), "budget_s": self.budget_s},
                )


class OverBudget(RuntimeError):
    """Raised instead of running an expression that was over its time budget before."""


WATCHDOG = Watchdog()
