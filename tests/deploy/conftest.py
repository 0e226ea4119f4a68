"""Every kustomization rendered once per test session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Rendered, kubectl, kustomizations, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    try:
        kubectl()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return {name: Rendered(name, render(path)) for name, path in kustomizations().items()}


@pytest.fixture(scope="session")
def overlays(rendered: dict[str, Rendered]) -> list[Rendered]:
    """What users apply to run shoal: the overlays and their variants."""
    return [r for name, r in rendered.items() if not name.startswith("jobs/")]
