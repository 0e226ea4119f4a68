"""KEDA's `scalingModifiers.formula`, for the arithmetic a scaling formula needs.

KEDA evaluates formulas with expr-lang. Its arithmetic reads like Python's, so
the formula is parsed with Python's own parser and only the safe part of the
tree is evaluated: numbers, trigger names, + - * / % ** (and expr's ^),
parentheses, comparisons, and min, max, abs, ceil, floor, round. Anything else
(expr's `a ? b : c`, `??`, member access) is refused when the file is loaded,
with the reason, rather than misread.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "round": round,
}


class FormulaError(ValueError):
    """A formula the local stand-in cannot evaluate, with the reason."""


@dataclass(frozen=True)
class Formula:
    text: str
    names: frozenset[str]
    _tree: ast.Expression

    @classmethod
    def parse(cls, text: str, known: set[str]) -> Formula:
        try:
            tree = ast.parse(text.replace("^", "**"), mode="eval")
        except SyntaxError as exc:
            raise FormulaError(
                f"formula {text!r} is not arithmetic the local stand-in evaluates "
                "(+ - * / % **, parentheses, comparisons, min max abs ceil floor round)"
            ) from exc
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names -= set(_FUNCTIONS)
        unknown = names - known
        if unknown:
            raise FormulaError(
                f"formula {text!r} names {sorted(unknown)}, which are not triggers; "
                f"the triggers are {sorted(known)}"
            )
        formula = cls(text, frozenset(names), tree)
        formula.evaluate(dict.fromkeys(names, 1.0))  # refuses unsupported syntax now
        return formula

    def evaluate(self, values: Mapping[str, float]) -> float:
        return float(_evaluate(self._tree.body, values, self.text))


def _evaluate(node: ast.AST, values: Mapping[str, float], text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in values:
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, values, text), _evaluate(node.right, values, text)
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            return math.copysign(math.inf, left) if left else 0.0  # Go's float division
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, values, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _evaluate(node.left, values, text)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, values, text)
            if not _COMPARE[type(op)](left, right):
                return 0.0
            left = right
        return 1.0
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg, values, text) for arg in node.args))
    raise FormulaError(f"formula {text!r}: {ast.unparse(node)!r} is not supported locally")
