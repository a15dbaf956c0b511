"""``instance_type`` -> the cheapest matching size of a provider's region.

Three forms (:func:`parse`):

* an accelerator, ``"A10G:1"``, ``"A100:8"``, ``"T4"`` (one): sizes of the families
  :data:`ACCELERATORS` lists for that accelerator on the provider, with exactly that many;
* CPU and memory, ``"CPU:4+"``, ``"CPU:8+ memory:32+"`` (``+``: at least; without it: exactly;
  memory in GB): x86-64 sizes without accelerators (the default images are x86-64);
* the provider's own size name, ``"g5.xlarge"``.

The sizes themselves, with their vCPUs, memory, GPU count and hourly price, come from the
driver's ``list_sizes()`` (for EC2 libcloud ships the table and prices: no request is made). The
cheapest match wins (a size without a known price only when none has one). Nothing matching is a
:class:`~rhzmq.ClusterError` listing what exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...wire.exceptions import ClusterError

#: Accelerator -> provider -> size-name prefixes carrying it. Maintained by hand: libcloud's
#: size lists give a GPU *count* (EC2) but not the model. Counts per size come from the size
#: (EC2's ``gpu``) or from :data:`GPU_COUNTS`.
ACCELERATORS: dict[str, dict[str, tuple[str, ...]]] = {
    "A10G": {"aws": ("g5.",)},
    "A10": {"azure": ("Standard_NV6ads_A10", "Standard_NV12ads_A10", "Standard_NV36ads_A10")},
    "T4": {"aws": ("g4dn.",), "azure": ("Standard_NC4as_T4", "Standard_NC8as_T4")},
    "T4G": {"aws": ("g5g.",)},
    "L4": {"aws": ("g6.",), "gcp": ("g2-standard-",)},
    "L40S": {"aws": ("g6e.",)},
    "V100": {"aws": ("p3.",), "azure": ("Standard_NC6s_v3", "Standard_NC12s_v3")},
    "A100": {"aws": ("p4d.",), "gcp": ("a2-highgpu-",), "azure": ("Standard_NC24ads_A100",)},
    "A100-80GB": {"aws": ("p4de.",), "gcp": ("a2-ultragpu-",)},
    "H100": {"aws": ("p5.",), "gcp": ("a3-highgpu-",)},
    "K80": {"aws": ("p2.",)},
    "M60": {"aws": ("g3.", "g3s.")},
}

#: GPUs per size where the provider's size list does not say (GCP and Azure).
GPU_COUNTS: dict[str, int] = {
    "g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1,
    "g2-standard-24": 2, "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8,
    "a2-highgpu-1g": 1, "a2-highgpu-2g": 2, "a2-highgpu-4g": 4, "a2-highgpu-8g": 8,
    "a2-ultragpu-1g": 1, "a2-ultragpu-2g": 2, "a2-ultragpu-4g": 4, "a2-ultragpu-8g": 8,
    "a3-highgpu-8g": 8,
    "Standard_NV6ads_A10_v5": 1, "Standard_NV12ads_A10_v5": 1, "Standard_NV36ads_A10_v5": 1,
    "Standard_NC4as_T4_v3": 1, "Standard_NC8as_T4_v3": 1,
    "Standard_NC6s_v3": 1, "Standard_NC12s_v3": 2, "Standard_NC24ads_A100_v4": 1,
}  # fmt: skip

_ACCEL = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9-]*)(?::(?P<count>\d+))?")
_PART = re.compile(r"(?P<what>cpu|memory):(?P<n>\d+(?:\.\d+)?)(?P<plus>\+)?", re.I)


@dataclass(frozen=True)
class Spec:
    """A parsed ``instance_type``."""

    text: str
    accelerator: str | None = None
    count: int = 0
    cpus: tuple[float, bool] | None = None  # (n, at least?)
    memory_gb: tuple[float, bool] | None = None
    size_name: str | None = None


def parse(text: str) -> Spec:
    if not isinstance(text, str) or not text.strip():
        raise ClusterError(f"instance_type must be a string such as 'A10G:1', got {text!r}")
    text = text.strip()
    parts = text.split()
    if all(_PART.fullmatch(p) for p in parts):
        found: dict[str, tuple[float, bool]] = {}
        for p in parts:
            m = _PART.fullmatch(p)
            assert m is not None  # checked just above
            found[m["what"].lower()] = (float(m["n"]), bool(m["plus"]))
        return Spec(text, cpus=found.get("cpu"), memory_gb=found.get("memory"))
    m = _ACCEL.fullmatch(text)
    if m and m["name"].upper() in ACCELERATORS:
        return Spec(text, accelerator=m["name"].upper(), count=int(m["count"] or 1))
    return Spec(text, size_name=text)


def vcpus(size: Any) -> float | None:
    extra = getattr(size, "extra", None) or {}
    for key in ("vcpu", "vcpus", "cpu", "cpus", "guestCpus", "numberOfCores"):
        try:
            return float(extra[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def gpus(size: Any) -> int:
    extra = getattr(size, "extra", None) or {}
    try:
        return int(extra.get("gpu") or GPU_COUNTS.get(size.id) or 0)
    except (TypeError, ValueError):
        return 0


def is_arm(size: Any) -> bool:
    """An ARM machine (AWS Graviton: a1, t4g, m6g...)."""
    extra = getattr(size, "extra", None) or {}
    processor = str(extra.get("physicalProcessor", "")).lower()
    return "graviton" in processor or str(size.id).startswith("a1.")


def memory_gb(size: Any) -> float | None:
    return size.ram / 1024 if getattr(size, "ram", None) else None


def price_of(size: Any) -> float | None:
    """The hourly price, or None where unknown. A price of 0 is unknown too: no machine is free,
    and libcloud's tables carry a few zeros (g4dn.8xlarge in us-west-2)."""
    try:
        price = float(getattr(size, "price", None) or 0)
    except (TypeError, ValueError):
        return None
    return price if price > 0 else None


def _fits(value: float | None, want: tuple[float, bool] | None) -> bool:
    if want is None:
        return True
    if value is None:
        return False
    n, at_least = want
    return value >= n if at_least else value == n


@dataclass(frozen=True)
class Choice:
    """The size chosen for a spec, and what ``num_nodes`` of it cost per hour."""

    spec: Spec
    size: Any
    num_nodes: int

    @property
    def price(self) -> float | None:
        return price_of(self.size)

    @property
    def total(self) -> float | None:
        return None if self.price is None else self.price * self.num_nodes

    def describe(self) -> str:
        cpus, mem, n = vcpus(self.size), memory_gb(self.size), gpus(self.size)
        shape = ", ".join(
            x
            for x in (
                f"{cpus:g} vCPU" if cpus else "",
                f"{mem:g} GiB" if mem else "",
                f"{n} GPU" if n else "",
            )
            if x
        )
        price = (
            f"${self.price:.3f}/h x {self.num_nodes} node{'s' if self.num_nodes > 1 else ''} = "
            f"${self.total:.3f}/h"
            if self.price is not None and self.total is not None
            else "price unknown (not in libcloud's price table for this region)"
        )
        return f"{self.spec.text} -> {self.size.id}{f' ({shape})' if shape else ''}: {price}"


def resolve(
    spec: Spec, sizes: list[Any], provider: str, region: str | None, num_nodes: int
) -> Choice:
    """The cheapest size of ``sizes`` matching ``spec`` (see the module docstring)."""
    where = f"{provider}{' ' + region if region else ''}"
    if spec.size_name is not None:
        exact = [s for s in sizes if spec.size_name in (s.id, s.name)]
        if exact:
            return Choice(spec, exact[0], num_nodes)
        close = sorted(s.id for s in sizes if s.id.split(".")[0] == spec.size_name.split(".")[0])
        accel = sorted(a for a, by in ACCELERATORS.items() if provider in by)
        raise ClusterError(
            f"unknown instance_type {spec.text!r} in {where}: use an accelerator "
            f"({', '.join(accel) or 'none known for this provider'}, e.g. 'A10G:1'), "
            "'CPU:4+', 'CPU:8+ memory:32+', or one of the region's "
            f"{len(sizes)} sizes{' such as ' + ', '.join(close[:8]) if close else ''}"
        )
    if spec.accelerator is not None:
        prefixes = ACCELERATORS[spec.accelerator].get(provider)
        if not prefixes:
            where_known = sorted(ACCELERATORS[spec.accelerator])
            raise ClusterError(
                f"{spec.accelerator} is not offered on {provider} as far as rhzmq knows (it is "
                f"on: {', '.join(where_known)}); give a size name of {provider} instead"
            )
        family = [s for s in sizes if s.id.startswith(prefixes)]
        matches = [s for s in family if gpus(s) == spec.count]
        if not matches:
            counts = sorted({gpus(s) for s in family})
            raise ClusterError(
                f"no {spec.accelerator}:{spec.count} size in {where}: "
                + (
                    f"{spec.accelerator} comes {', '.join(map(str, counts))} per machine there "
                    f"({', '.join(sorted(s.id for s in family)[:10])})"
                    if family
                    else f"none of {', '.join(prefixes)}* is offered in this region"
                )
            )
    else:
        matches = [
            s
            for s in sizes
            if gpus(s) == 0
            and not is_arm(s)  # the default images are x86-64; name an ARM size to get one
            and _fits(vcpus(s), spec.cpus)
            and _fits(memory_gb(s), spec.memory_gb)
        ]
        if not matches:
            raise ClusterError(f"no size in {where} has {spec.text} (and no accelerator)")
    return Choice(spec, min(matches, key=lambda s: _rank(s, sizes)), num_nodes)


def _family(size: Any) -> str:
    return str(size.id).split(".")[0] if "." in str(size.id) else str(size.id).rsplit("-", 1)[0]


def _rank(size: Any, every: list[Any]) -> tuple[float, float, float, str]:
    """Cheapest first. A size without a known price ranks just below the cheapest priced size
    of its family with at least its vCPUs (a bigger machine of one family never costs less),
    so a missing entry in the price table never makes rhzmq pick a bigger machine."""
    price = price_of(size)
    if price is None:
        bounds = [
            p
            for other in every
            if _family(other) == _family(size)
            and (vcpus(other) or 0) >= (vcpus(size) or 0)
            and (p := price_of(other)) is not None
        ]
        price = min(bounds) - 1e-6 if bounds else float("inf")
    return (price, vcpus(size) or 0.0, float(size.ram or 0), str(size.id))
