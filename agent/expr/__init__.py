"""The expression language of Argo Workflows: an expr-lang v1.17 compatible evaluator.

Argo evaluates ``successCondition``, ``retryStrategy.expression`` and ``{{=...}}`` tags
with github.com/expr-lang/expr plus functions of its own; this package reproduces the
language (syntax, Go value semantics, the static type check, the builtins) and Argo's
layer over it (dotted-key expansion, ``asInt``/``asFloat``/``toJson``/``jsonpath``, a
curated ``sprig``, template rendering, ``EvalBool``'s message texts).

Public surface::

    evaluate(source, env, *, argo=True) -> Any      # compile (cached) and run
    eval_bool(source, env, *, argo=False) -> bool   # Argo's argoexpr.EvalBool
    success_condition_message(cond, env) -> str     # the HTTP agent's node message, "" if ok
    render(text, env) -> str                        # {{=expr}} and {{name}} tags
    compile(source, *, argo=True) -> Program        # Program.run(env) -> Any
    ExprError                                       # every compile or run-time error
    Limits                                          # memory, string size and time bounds

Layout: ``lexer`` -> ``parser`` (tree in ``ast``) -> ``checker`` (natures in ``types``)
-> ``interp`` (closures over ``values``/``builtins``/``gotime``), with ``argo``,
``sprig`` and ``template`` on top and ``program`` holding the compile cache.
"""

from .argo import success_condition_false_message
from .errors import ExprError
from .program import Program, compile, eval_bool, evaluate, success_condition_message
from .state import DEFAULT_LIMITS, Limits
from .template import render

__all__ = [
    "DEFAULT_LIMITS",
    "ExprError",
    "Limits",
    "Program",
    "compile",
    "eval_bool",
    "evaluate",
    "render",
    "success_condition_false_message",
    "success_condition_message",
]
