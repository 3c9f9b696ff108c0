"""Trigger rules: the model marketing teams configure, its CEL conditions, guards and evaluation."""

from shared.rules.builtin import builtin_rules
from shared.rules.evaluator import RuleSet, Verdict, arbitrate, evaluate
from shared.rules.model import ContactPolicy, Rule, rule_schema, scope_field

__all__ = [
    "ContactPolicy",
    "Rule",
    "RuleSet",
    "Verdict",
    "arbitrate",
    "builtin_rules",
    "evaluate",
    "rule_schema",
    "scope_field",
]
