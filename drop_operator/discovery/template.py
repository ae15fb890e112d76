"""`imageTemplate`: the documented Go-template spelling, rendered by jinja2 in a sandbox.

Users write what the product documents — `registry.gitlab.com/{{ .Repository }}:x86_64-{{ .Tag }}`
— so the leading dot of Go's field access is dropped inside `{{ … }}` and the result is rendered
by a jinja2 `SandboxedEnvironment` with `StrictUndefined`. The template is checked when the source
is built: only the variables `Registry` (host[:port], never a URL), `Repository` and `Tag`, string
constants, `~` concatenation and the filters `lower`, `upper`, `replace`, `trim` are allowed.
Attribute or item access, calls, statements and unknown variables are rejected with
`SourceError(InvalidTemplate)` naming the problem; nothing in a template can reach Python objects.

jinja2 is imported when the first template is built, not with this module: most policies have no
template, and the operator should not carry a template engine it does not use (see docs/scale.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from drop_operator.discovery.errors import Reason, SourceError

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TEMPLATE_VARIABLES", "ImageTemplate"]

TEMPLATE_VARIABLES = frozenset({"Registry", "Repository", "Tag"})
_ALLOWED_FILTERS = frozenset({"lower", "upper", "replace", "trim"})
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
# A Go field reference: a dot starting an identifier, not preceded by an identifier, `)` or `]`.
_GO_FIELD = re.compile(r"(?<![\w)\]])\.(?=[A-Za-z_])")
_MAX_LENGTH = 1024


def translate_go_fields(template: str) -> str:
    """`{{ .Tag }}` → `{{ Tag }}` inside expressions only; text outside `{{ }}` is untouched."""
    return _EXPRESSION.sub(lambda m: "{{" + _GO_FIELD.sub("", m.group(1)) + "}}", template)


def _invalid(template: str, problem: str) -> SourceError:
    return SourceError(Reason.INVALID_TEMPLATE, f"imageTemplate {template!r}: {problem}")


@functools.cache
def _sandbox() -> SandboxedEnvironment:
    """The shared sandboxed environment (imports jinja2 on first use)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


class ImageTemplate:
    """A validated image template; `render(...)` returns the image string."""

    def __init__(self, template: str) -> None:
        import jinja2

        self.source = template
        if len(template) > _MAX_LENGTH:
            raise _invalid(template[:60] + "…", f"longer than {_MAX_LENGTH} characters")
        translated = translate_go_fields(template)
        env = _sandbox()
        try:
            ast = env.parse(translated)
        except jinja2.TemplateSyntaxError as err:
            raise _invalid(template, f"syntax error: {err.message} (write e.g. {{{{ .Tag }}}})") from None
        self._check(template, ast)
        self._compiled = env.from_string(translated)

    @staticmethod
    def _check(template: str, ast: nodes.Template) -> None:
        from jinja2 import nodes

        allowed_nodes = (
            nodes.Template,
            nodes.Output,
            nodes.TemplateData,
            nodes.Name,
            nodes.Const,
            nodes.Concat,
            nodes.Filter,
            nodes.Keyword,
        )
        for node in ast.find_all(nodes.Node):
            if isinstance(node, nodes.Getattr | nodes.Getitem):
                raise _invalid(
                    template, "attribute and item access are not allowed; use Registry, Repository, Tag"
                )
            if isinstance(node, nodes.Call):
                raise _invalid(template, "function calls are not allowed")
            if isinstance(node, nodes.Filter) and node.name not in _ALLOWED_FILTERS:
                allowed = ", ".join(sorted(_ALLOWED_FILTERS))
                raise _invalid(template, f"filter {node.name!r} is not allowed (allowed: {allowed})")
            if isinstance(node, nodes.Name) and node.name not in TEMPLATE_VARIABLES:
                known = ", ".join(sorted(TEMPLATE_VARIABLES))
                raise _invalid(template, f"unknown variable {node.name!r} (known: {known})")
            if not isinstance(node, allowed_nodes):
                raise _invalid(
                    template, f"{type(node).__name__} is not allowed; only {{{{ Variable }}}} and text"
                )

    def render(self, variables: Mapping[str, str]) -> str:
        import jinja2

        try:
            return self._compiled.render(**variables).strip()
        except jinja2.TemplateError as err:
            raise _invalid(self.source, f"cannot render: {err}") from None
