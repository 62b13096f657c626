"""The printed result: one row per measurement, ours beside the raw SQLAlchemy Core rate."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    db: str
    name: str
    ours: float | None  # a rate (higher is better) or a time, see unit
    unit: str
    raw: float | None = None  # the raw rate for the same rows on the same database
    raw_what: str = ""
    note: str = ""

    @property
    def fraction(self) -> float | None:
        if self.ours is None or not self.raw:
            return None
        return self.ours / self.raw


@dataclass
class Target:
    db: str
    name: str
    value: float | None
    goal: str
    ok: bool | None  # None: not measured


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render(report: Report) -> str:
    header = ("db", "measurement", "ours", "unit", "raw Core", "raw of what", "ours/raw", "note")
    lines = [
        (
            r.db,
            r.name,
            _num(r.ours),
            r.unit,
            _num(r.raw) if r.raw is not None else "",
            r.raw_what,
            f"{r.fraction:.0%}" if r.fraction is not None else "",
            r.note,
        )
        for r in report.rows
    ]
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(header)]
    right = {2, 4, 6}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    out = [fmt(header), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in lines]
    if report.targets:
        out += ["", "Targets"]
        for t in report.targets:
            verdict = "n/a " if t.ok is None else ("PASS" if t.ok else "MISS")
            value = _num(t.value) if t.value is not None else "n/a"
            out.append(f"  [{verdict}] {t.db:<10} {t.name}: {value} (target {t.goal})")
    if report.notes:
        out += ["", "Notes"]
        out += [f"  - {n}" for n in report.notes]
    return "\n".join(out)
