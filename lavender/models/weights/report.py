"""`LoadReport`: what one load of a weights file did, printed as the loader's report."""
from dataclasses import dataclass, field

from .layouts import LAYOUT_SCOPE

__all__ = ["LoadReport", "short_list"]


def short_list(items, n=6):
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


@dataclass
class LoadReport:
    """What a load did. ``ok``: nothing missing (within the layout's scope), unexpected or mismatched,
    apart from the ``expected`` gaps."""
    source: str
    layout: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, model shape)
    ignored: list = field(default_factory=list)     # file keys that are not weights of this model (harmless)
    adapted: list = field(default_factory=list)     # human-readable notes on resized/filled tensors
    expected: dict = field(default_factory=dict)    # reason -> model keys the file is not meant to fill
    out_of_scope: int = 0

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self):
        """One line: what keeps the load from being complete."""
        parts = [f"{len(self.missing)} model tensor(s) missing from the file" if self.missing else "",
                 f"{len(self.mismatched)} of another shape" if self.mismatched else "",
                 f"{len(self.unexpected)} file tensor(s) the model does not have" if self.unexpected else ""]
        return ", ".join(p for p in parts if p)

    def __str__(self):
        scope = ", ".join(p or "<all>" for p in LAYOUT_SCOPE.get(self.layout, ("",)))
        lines = [f"[load_weights] {self.source}", f"  layout: {self.layout} (covers {scope})",
                 f"  loaded: {len(self.loaded)} tensors"]
        if self.out_of_scope:
            lines.append(f"  not covered by this layout (left as they are): {self.out_of_scope} tensors")

        def block(title, items, n=20):
            if items:
                lines.append(f"  {title}: {len(items)}")
                lines.extend(f"    {x}" for x in items[:n])
                if len(items) > n:
                    lines.append(f"    ... ({len(items) - n} more)")
        block("adapted", self.adapted)
        for reason, keys in self.expected.items():
            lines.append(f"  expected, {reason}: {len(keys)}: {short_list(keys, 4)}")
        block("MISSING (model keys not in the file)", self.missing)
        block("UNEXPECTED (file keys the model does not have)", self.unexpected)
        block("SHAPE MISMATCHED (skipped; file vs model)",
              [f"{k}: {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched])
        if self.ignored:
            lines.append(f"  ignored (not weights of this model, harmless): {len(self.ignored)}: "
                         + short_list(self.ignored))
        lines.append("  result: " + ("OK" if self.ok else f"PARTIAL ({self.problems()}; "
                                                          "those model tensors keep their current values)"))
        return "\n".join(lines)

